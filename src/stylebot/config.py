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

from stylebot.queue.payloads import MIXED_PRECISION, OPTIMIZERS, TRAIN_METHODS, TrainSettings

ENV_PREFIX = "STYLEBOT_"
UNPREFIXED_ENV = ("redis_url", "discord_token", "discord_guild_id", "telegram_token")
# Few-step ("turbo") models: SD-Turbo and SDXL-Turbo are distilled to sample in
# 1 to 4 steps without classifier-free guidance; more steps or guidance only
# spoil their images.
MODEL_VARIANTS = ("auto", "standard", "turbo")
BASE_MODEL_FAMILIES = ("auto", "sd15", "sd2", "sdxl")
FEW_STEP_MAX_STEPS = 4
FEW_STEP_DEFAULT_STEPS = 1


class SettingsError(ValueError):
    """A setting has a value the program cannot use; the message says which and why."""


# The values Settings.mixed_style_batches takes.
MIXED_STYLE_BATCHES = ("auto", "on", "off")


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
    # turbo: a few-step model (guidance 0, at most 4 steps, default 1; see
    # load_settings); standard: not; auto: turbo when the base model's name
    # contains "turbo".
    model_variant: str = "auto"
    # A single-file checkpoint's family: sd15, sd2, sdxl, or auto (read from its keys).
    base_model_family: str = "auto"
    # A diffusers folder or hub id whose component configs a single-file base
    # model loads with. Empty: diffusers' guess, which takes every SD 2.x file
    # for the 768 px v-prediction model (wrong for the 512 px epsilon base).
    base_model_config: str = ""

    # Training defaults. Steps, rank and learning rate left unset (None) are
    # chosen per style from its number of images (stylebot.bot.core.training_defaults).
    train_steps: int | None = None
    train_resolution: int = 512
    lora_rank: int | None = None
    learning_rate: float | None = None
    # Mirror images too (off: styles with text or asymmetric motifs suffer).
    train_flip: bool = False
    # Min-SNR-γ loss weighting (0: plain MSE) and offset noise (0: none; 0.05-0.1
    # lets a style be darker or brighter overall than mid-grey).
    train_min_snr_gamma: float = 5.0
    train_noise_offset: float = 0.0
    # Less GPU memory for about a third more time per step.
    train_gradient_checkpointing: bool = False
    # auto: bf16 (else fp16) autocast on a GPU, none on a CPU; or no, fp16, bf16.
    train_mixed_precision: str = "auto"
    # auto: 8-bit AdamW on CUDA when bitsandbytes is installed, else AdamW; or adamw, adamw8bit.
    train_optimizer: str = "auto"
    # What a style trains: lora; textual_inversion (a new token's embedding, the
    # style's token then starts its prompts); or both (pivotal tuning).
    train_method: str = "lora"
    # A running training saves a checkpoint every this many steps (or 30 s), so a
    # worker that dies costs at most that much work: another worker resumes there.
    checkpoint_every_steps: int = 50
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
    # Per message (an upload, /optout), checked before any image is decoded.
    max_upload_files: int = 20
    max_upload_total_bytes: int = 50 * 1024 * 1024
    # Images decoded at once on the front end (uploads, /optout, /verify); more wait.
    image_work_concurrency: int = 2
    # /optout registrations per person: in all, and over a rolling day (0: no limit).
    optouts_per_user: int = 200
    optouts_per_user_per_day: int = 20

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
    # A new style that finds the adapter cache full is hot-swapped into the least
    # recently used style's slot (no UNet walk, no torch.compile recompile);
    # slots are padded to this rank, the largest the trainer makes by default.
    lora_hotswap: bool = True
    lora_hotswap_rank: int = 16
    # Requests in different styles (same size, steps, guidance) share one call
    # through PEFT's per-sample adapters: auto = on a CUDA device only (on the
    # CPU it saves nothing), on, or off.
    mixed_style_batches: str = "auto"
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
    # A Bot API server other than api.telegram.org (e.g. a local telegram-bot-api,
    # http://localhost:8081); the bot calls URL/bot<token>/ and URL/file/bot<token>/.
    telegram_api_url: str | None = None

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

    @property
    def few_step_model(self) -> bool:
        """Whether the base model is a few-step (turbo) one, by `model_variant`."""
        return is_few_step_model(self.model, self.model_variant)

    @property
    def train_chosen_from_images(self) -> tuple[str, ...]:
        """The TrainSettings fields the operator left to the number of images."""
        unset = {
            "steps": self.train_steps,
            "rank": self.lora_rank,
            "learning_rate": self.learning_rate,
        }
        return tuple(name for name, value in unset.items() if value is None)

    def train_settings(self) -> TrainSettings:
        """The operator's training settings; unset ones hold TrainSettings' defaults
        until `train_chosen_from_images` replaces them per style."""
        base = TrainSettings()
        return TrainSettings(
            steps=base.steps if self.train_steps is None else self.train_steps,
            resolution=self.train_resolution,
            rank=base.rank if self.lora_rank is None else self.lora_rank,
            learning_rate=base.learning_rate if self.learning_rate is None else self.learning_rate,
            flip=self.train_flip,
            min_snr_gamma=self.train_min_snr_gamma,
            noise_offset=self.train_noise_offset,
            gradient_checkpointing=self.train_gradient_checkpointing,
            mixed_precision=self.train_mixed_precision,
            optimizer=self.train_optimizer,
            checkpoint_every_steps=max(1, self.checkpoint_every_steps),
            method=self.train_method,
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
    settings = Settings(**kwargs, extra=unknown)
    _check_choice("train_mixed_precision", settings.train_mixed_precision, MIXED_PRECISION)
    _check_choice("train_optimizer", settings.train_optimizer, OPTIMIZERS)
    _check_choice("train_method", settings.train_method, TRAIN_METHODS)
    _check_choice("mixed_style_batches", settings.mixed_style_batches, MIXED_STYLE_BATCHES)
    if settings.model_variant not in MODEL_VARIANTS:
        raise SettingsError(
            f"setting model_variant (env {ENV_PREFIX}MODEL_VARIANT) should be one of "
            f"{', '.join(MODEL_VARIANTS)}, got {settings.model_variant!r}"
        )
    if settings.base_model_family not in BASE_MODEL_FAMILIES:
        raise SettingsError(
            f"setting base_model_family (env {ENV_PREFIX}BASE_MODEL_FAMILY) should be one of "
            f"{', '.join(BASE_MODEL_FAMILIES)}, got {settings.base_model_family!r}"
        )
    _check_operators(settings.operators)
    if settings.few_step_model:
        # Caps rather than defaults: a copied .env.example sets 25 steps and
        # guidance 7.5, which a turbo model cannot use.
        max_steps = min(settings.max_steps, FEW_STEP_MAX_STEPS)
        default_steps = (
            settings.default_steps if "default_steps" in kwargs else FEW_STEP_DEFAULT_STEPS
        )
        settings = dataclasses.replace(
            settings,
            max_steps=max_steps,
            default_steps=min(default_steps, max_steps),
            default_guidance=0.0,
        )
    return settings


def is_few_step_model(base_model: str, variant: str = "auto") -> bool:
    """`variant` "turbo" or "standard" decides; "auto" looks for "turbo" in the
    model's own name (the folder, file or hub repo name: sd-turbo, sdxl-turbo)."""
    if variant != "auto":
        return variant == "turbo"
    return "turbo" in Path(base_model.rstrip("/\\")).name.lower()


def _check_operators(text: str) -> None:
    """A malformed operators list is a settings error (exit 2) when the settings load,
    not a failure halfway through starting the front end."""
    from stylebot.bot.core.admin import parse_operators  # the rule lives with the admin rules

    try:
        parse_operators(text)
    except ValueError as exc:
        raise SettingsError(f"setting operators (env {ENV_PREFIX}OPERATORS): {exc}") from exc


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(
            f"setting {name} (env {ENV_PREFIX}{name.upper()}) should be one of "
            f"{', '.join(choices)}, got {value!r}"
        )


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
