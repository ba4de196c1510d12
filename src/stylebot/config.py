"""Settings: one typed object, from defaults, an optional TOML file, then the environment.

Each field can be set in TOML under its own name (`data_dir = "..."`) or by an
environment variable `STYLEBOT_<NAME>` (upper case). `REDIS_URL`,
`DISCORD_TOKEN`, `DISCORD_GUILD_ID` and `TELEGRAM_TOKEN` are also read without the prefix, since
that is how hosting platforms and compose files usually pass them.
The TOML file is `STYLEBOT_CONFIG`, else `./stylebot.toml` when it exists.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylebot.queue.payloads import TrainSettings

ENV_PREFIX = "STYLEBOT_"
UNPREFIXED_ENV = ("redis_url", "discord_token", "discord_guild_id", "telegram_token")


class SettingsError(ValueError):
    """A setting has a value the program cannot use; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    # None: start an embedded Redis under data_dir.
    redis_url: str | None = None
    # A diffusers folder, a single-file checkpoint, or a hub id. Empty: the
    # tiny demo model under data_dir/models/tiny-sd.
    base_model: str = ""
    device: str = "auto"
    dtype: str = "auto"

    # Training defaults.
    train_steps: int = 200
    train_resolution: int = 512
    lora_rank: int = 8
    learning_rate: float = 1e-4
    train_timeout_s: int = 6 * 3600
    min_train_images: int = 1
    max_train_images: int = 40

    # Generation defaults and limits.
    default_steps: int = 25
    max_steps: int = 60
    default_guidance: float = 7.5
    default_size: int = 512
    min_size: int = 256
    max_size: int = 1024
    max_images_per_request: int = 4
    max_prompt_chars: int = 1000
    generate_timeout_s: int = 600

    # Uploads.
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_pixels: int = 40_000_000

    # Quotas over a rolling day, per user and per server or group (0: no limit);
    # generation counts images, training counts styles.
    images_per_user_per_day: int = 500
    images_per_server_per_day: int = 5000
    trainings_per_user_per_day: int = 10
    trainings_per_server_per_day: int = 50
    # At most this many generation or training requests per user per window (0: off).
    requests_per_window: int = 10
    rate_window_s: int = 60
    # Jobs queued or running at once, per user and per server or group (0: no limit).
    max_queued_per_user: int = 5
    max_queued_per_server: int = 50
    # Words or phrases refused in prompts, comma-separated in the environment.
    prompt_blocklist: tuple[str, ...] = ()

    # C2PA signing: the operator's certificate chain and key (PEM). Unset: a
    # local CA and signing certificate are made under data_dir/c2pa.
    c2pa_cert_chain: Path | None = None
    c2pa_private_key: Path | None = None

    # Worker.
    max_loaded_adapters: int = 8
    worker_concurrency: int = 1
    # Same-style requests waiting together share one pipeline call, up to this.
    max_batch_size: int = 4
    # A worker holds a running job's lease this long and renews it; a job
    # whose worker died is retried once its lease runs out.
    job_lease_s: float = 60.0

    # Operations.
    # Prometheus metrics on this port (None: no metrics endpoint).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"  # text or json
    # Who may run operator-wide admin commands: "platform:user_id", comma-separated.
    operators: str = ""

    discord_token: str | None = None
    discord_guild_id: int | None = None
    telegram_token: str | None = None

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "stylebot.sqlite3"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def outputs_dir(self) -> Path:
        """Where the console adapter writes images for the person at the terminal."""
        return self.data_dir / "outputs"

    @property
    def signing_dir(self) -> Path:
        return self.data_dir / "c2pa"

    @property
    def tiny_model_dir(self) -> Path:
        return self.data_dir / "models" / "tiny-sd"

    @property
    def model(self) -> str:
        """The base model to load: the setting, else the tiny demo model."""
        return self.base_model or str(self.tiny_model_dir)

    def train_settings(self) -> TrainSettings:
        return TrainSettings(
            steps=self.train_steps,
            resolution=self.train_resolution,
            rank=self.lora_rank,
            learning_rate=self.learning_rate,
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from defaults < TOML file < environment < explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = config_file or _config_path_from(env)
    if path is not None:
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc

    known = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    for name in known:
        env_value = env.get(ENV_PREFIX + name.upper())
        if env_value is None and name in UNPREFIXED_ENV:
            env_value = env.get(name.upper())
        if env_value is not None and env_value != "":
            values[name] = env_value
    values.update({k: v for k, v in overrides.items() if v is not None})

    unknown = {k: v for k, v in values.items() if k not in known}
    hints = typing.get_type_hints(Settings)
    kwargs = {name: _coerce(name, values[name], hints[name]) for name in known if name in values}
    return Settings(**kwargs, extra=unknown)


def _config_path_from(env: Mapping[str, str]) -> Path | None:
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    default = Path("stylebot.toml")
    return default if default.is_file() else None


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or say what is wrong."""
    target = annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        target = args[0]
    try:
        if target is Path:
            return Path(value).expanduser()
        if target is bool:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if target is int:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return int(value)
        if target is float:
            return float(value)
        if target is str:
            return str(value)
        if typing.get_origin(target) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
    except (TypeError, ValueError) as exc:
        raise SettingsError(
            f"setting {name} (env {ENV_PREFIX}{name.upper()}) should be "
            f"{getattr(target, '__name__', target)}, got {value!r}"
        ) from exc
    return value
