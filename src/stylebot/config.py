"""Settings: one typed object, from defaults, an optional TOML file, then the environment.

Each field can be set in TOML under its own name (`data_dir = "..."`) or by an
environment variable `STYLEBOT_<NAME>` (upper case). `REDIS_URL`,
`DISCORD_TOKEN`, `DISCORD_GUILD_ID` and `TELEGRAM_TOKEN` are also read without the prefix, since
that is how hosting platforms and compose files usually pass them.
The TOML file is `STYLEBOT_CONFIG`, else `./stylebot.toml` when it exists.

Over 400 lines on purpose: every setting, with its default, its rule and why it is there,
in one typed object (the rules themselves live in `stylebot.setting_rules`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylebot.bot.core.images import ImageLimits
from stylebot.bot.core.policy import PolicySettings
from stylebot.queue.payloads import (
    LORA_VARIANTS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    OPTIMIZERS,
    TRAIN_METHODS,
    TrainSettings,
)
from stylebot.setting_rules import (
    Flag,
    Networks,
    Number,
    OneOf,
    PathValue,
    Pattern,
    Rule,
    SettingsError,
    Text,
    Url,
    Whole,
    Words,
    check_between_fields,
    parse_value,
    rule_of,
    setting,
    shown,
)

ENV_PREFIX = "STYLEBOT_"
UNPREFIXED_ENV = ("redis_url", "discord_token", "discord_guild_id", "telegram_token")
# Few-step ("turbo") models: SD-Turbo and SDXL-Turbo are distilled to sample in
# 1 to 4 steps without classifier-free guidance; more steps or guidance only
# spoil their images.
MODEL_VARIANTS = ("auto", "standard", "turbo")
BASE_MODEL_FAMILIES = ("auto", "sd15", "sd2", "sdxl", "flux", "sd3")
# What `stylebot model tiny` and `stylebot demo --family` build: each family, and
# FLUX.1's two variants (flux: dev-like, with the guidance input).
TINY_FAMILIES = ("sd15", "sd2", "sdxl", "flux", "flux-schnell", "sd3")
# Mirrors stylebot.engine.base_quantization (config imports no torch-side module).
BASE_QUANTIZATIONS = ("auto", "none", "int8")
FEW_STEP_MAX_STEPS = 4
FEW_STEP_DEFAULT_STEPS = 1
# The names diffusers' dtype setting takes (stylebot.engine.models._DTYPES).
DTYPES = ("auto", "float32", "fp32", "float16", "fp16", "bfloat16", "bf16")
DAY_S = 24 * 3600
# An s3:// URL with a valid bucket name, or a path (any other scheme:// is a mistake).
_BLOB_URL = r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?|(?!.*://)[^\x00-\x1f\x7f]*"
# A daily quota or a limit on queued jobs: 0 turns it off.
QUOTA = Whole(low=0, high=10**9, low_means="no limit")


# The values Settings.mixed_style_batches takes.
MIXED_STYLE_BATCHES = ("auto", "on", "off")
# Defaults the settings share with the core's types, defined there.
_UPLOADS = ImageLimits()
_TRAIN = TrainSettings()
# The rule of each PolicySettings field (its type and default are in the core).
POLICY_RULES: dict[str, Rule] = {
    "min_train_images": Whole(low=1, high=1000),
    "max_train_images": Whole(low=1, high=1000),
    "default_steps": Whole(low=1, high=1000),
    "max_steps": Whole(low=1, high=1000),
    "default_guidance": Number(low=0, high=50),
    "default_size": Whole("pixels", low=64, high=4096, multiple_of=8),
    "min_size": Whole("pixels", low=64, high=4096, multiple_of=8),
    "max_size": Whole("pixels", low=64, high=4096, multiple_of=8),
    "max_images_per_request": Whole(low=1, high=64),
    "max_prompt_chars": Whole(low=1, high=100_000),
    "images_per_user_per_day": QUOTA,
    "images_per_server_per_day": QUOTA,
    "trainings_per_user_per_day": QUOTA,
    "trainings_per_server_per_day": QUOTA,
    "requests_per_window": QUOTA,
    "rate_window_s": Whole("seconds", low=1, high=DAY_S),
    "erasures_per_user_per_day": QUOTA,
    "max_queued_per_user": QUOTA,
    "max_queued_per_server": QUOTA,
    "image_work_concurrency": Whole(low=1, high=64),
    "optouts_per_user": Whole(low=0, high=1_000_000, low_means="no limit"),
    "optouts_per_user_per_day": Whole(low=0, high=1_000_000, low_means="no limit"),
    # Comma-separated in the environment.
    "prompt_blocklist": Words(),
}


@dataclass(frozen=True)
class Settings(PolicySettings):
    """Every setting: the core's PolicySettings (inherited) and the rest."""

    data_dir: Path = setting(Path("data"), PathValue())  # noqa: RUF009 - field()
    # None: start an embedded Redis under data_dir.
    redis_url: str | None = setting(None, Url(schemes=("redis", "rediss", "unix")))
    # Blobs (uploads, weights, checkpoints, results): empty = data_dir/blobs, a
    # directory, or s3://bucket/prefix on S3-compatible storage (the s3_* settings).
    blob_url: str = setting("", Pattern("a directory or s3://bucket/prefix", regex=_BLOB_URL))
    # Empty: AWS S3 (its endpoint for s3_region); else the provider's https:// URL.
    s3_endpoint_url: str = setting("", Url(schemes=("http", "https"), optional=True))
    s3_region: str = setting(
        "", Pattern("a region name such as us-east-1 or auto", regex=r"([a-z0-9]+(-[a-z0-9]+)*)?")
    )
    # Unset: botocore's own chain (AWS_ACCESS_KEY_ID, ~/.aws, an instance role).
    s3_access_key_id: str | None = setting(None, Pattern("an access key id", regex=r"\S+"))
    s3_secret_access_key: str | None = setting(
        None, Pattern("a secret key (no spaces)", secret=True, regex=r"\S+"), repr=False
    )
    # path: https://host/bucket/key (MinIO, SeaweedFS); virtual: https://bucket.host/key.
    s3_addressing_style: str = setting("auto", OneOf(choices=("auto", "path", "virtual")))
    # rediss:// only (stylebot.queue.redis_endpoint): the CA that signed the Redis
    # server's certificate (unset: the system's CAs), and this process's own
    # certificate and key for a server that wants one (mutual TLS).
    redis_tls_ca_file: Path | None = setting(None, PathValue("a PEM file"))  # noqa: RUF009
    redis_tls_cert_file: Path | None = setting(None, PathValue("a PEM file"))  # noqa: RUF009
    redis_tls_key_file: Path | None = setting(None, PathValue("a PEM file"))  # noqa: RUF009
    # A diffusers folder, a single-file checkpoint, or a hub id. Empty: the
    # tiny demo model under data_dir/models/tiny-sd.
    base_model: str = setting("", Text("a diffusers folder, a .safetensors file or a hub id"))
    device: str = setting(
        "auto", Pattern("one of auto, cpu, mps, cuda or cuda:N", regex=r"auto|cpu|mps|cuda(:\d+)?")
    )
    dtype: str = setting("auto", OneOf(choices=DTYPES, ignore_case=True))
    # turbo: a few-step model (guidance 0, at most 4 steps, default 1; see
    # load_settings); standard: not; auto: turbo when the base model's name
    # contains "turbo".
    model_variant: str = setting("auto", OneOf(choices=MODEL_VARIANTS))
    # A single-file checkpoint's family: sd15, sd2, sdxl, flux, sd3, or auto (read from its keys).
    base_model_family: str = setting("auto", OneOf(choices=BASE_MODEL_FAMILIES))
    # The base transformer's weights (FLUX.1, SD 3.5) in int8 while LoRAs train on
    # it: auto picks it when the GPU has less memory than the family needs in
    # full precision (stylebot.engine.base_quantization).
    base_quantization: str = setting("auto", OneOf(choices=BASE_QUANTIZATIONS))
    # A diffusers folder or hub id whose component configs a single-file base
    # model loads with. Empty: diffusers' guess, which takes every SD 2.x file
    # for the 768 px v-prediction model (wrong for the 512 px epsilon base).
    base_model_config: str = setting("", Text("a diffusers folder or a hub id"))

    # Training defaults. Steps, rank and learning rate left unset (None) are
    # chosen per style from its number of images (stylebot.bot.core.training_defaults).
    train_steps: int | None = setting(None, Whole(low=1, high=100_000))
    train_resolution: int = setting(_TRAIN.resolution, Whole(low=64, high=4096, multiple_of=8))
    lora_rank: int | None = setting(None, Whole(low=1, high=1024))
    learning_rate: float | None = setting(None, Number(low=0, high=1, above_low=True))
    # Mirror images too (off: styles with text or asymmetric motifs suffer).
    train_flip: bool = setting(_TRAIN.flip, Flag())
    # Min-SNR-γ loss weighting (0: plain MSE) and offset noise (0: none; 0.05-0.1
    # lets a style be darker or brighter overall than mid-grey).
    train_min_snr_gamma: float = setting(_TRAIN.min_snr_gamma, Number(low=0, high=100))
    train_noise_offset: float = setting(_TRAIN.noise_offset, Number(low=0, high=1))
    # Less GPU memory for about a third more time per step.
    train_gradient_checkpointing: bool = setting(_TRAIN.gradient_checkpointing, Flag())
    # auto: bf16 (else fp16) autocast on a GPU, none on a CPU; or no, fp16, bf16.
    train_mixed_precision: str = setting(_TRAIN.mixed_precision, OneOf(choices=MIXED_PRECISION))
    # auto: 8-bit AdamW on CUDA when bitsandbytes is installed, else AdamW; or adamw, adamw8bit.
    train_optimizer: str = setting(_TRAIN.optimizer, OneOf(choices=OPTIMIZERS))
    # What a style trains: lora; textual_inversion (a new token's embedding, the
    # style's token then starts its prompts); or both (pivotal tuning).
    train_method: str = setting(_TRAIN.method, OneOf(choices=TRAIN_METHODS))
    # The adapter a LoRA trains: lora, dora (LoRA with a trained magnitude per
    # output) or lokr (Kronecker factors, LyCORIS); a style may ask for another.
    train_lora_variant: str = setting(_TRAIN.lora_variant, OneOf(choices=LORA_VARIANTS))
    # Learning rate: linear warm-up over this fraction of the steps, then cosine
    # decay to 0 ("cosine") or held ("constant").
    train_lr_schedule: str = setting(_TRAIN.lr_schedule, OneOf(choices=LR_SCHEDULES))
    train_lr_warmup: float = setting(_TRAIN.lr_warmup, Number(low=0, high=0.5))
    # An exponential moving average of the adapter's weights, saved as the style
    # instead of the last step's (0: off; 0.99-0.999 typical).
    train_ema_decay: float = setting(_TRAIN.ema_decay, Number(low=0, high=0.9999))
    # Per-image captions (stylebot.trainer.captions): the share of steps an image trains
    # on the trigger alone (0.05-0.1 keeps the trigger working without captions), and
    # whether a caption's comma-separated tags are shuffled at each step.
    train_caption_dropout: float = setting(_TRAIN.caption_dropout, Number(low=0, high=1))
    train_shuffle_tags: bool = setting(_TRAIN.shuffle_tags, Flag())
    # A running training saves a checkpoint every this many steps (or 30 s), so a
    # worker that dies costs at most that much work: another worker resumes there.
    # A CLIPModel checkpoint (folder or hub id, e.g. openai/clip-vit-large-patch14)
    # with which workers measure each finished style for /style info; "": none.
    clip_model: str = setting("", Text("a CLIPModel folder or hub id"))
    # A Florence-2 or BLIP captioning checkpoint (folder or hub id) with which workers
    # propose a caption per waiting image (/captions auto); "": none.
    captioner: str = setting("", Text("a Florence-2 or BLIP captioning folder or hub id"))
    # /sketch: a ControlNet trained on Canny edges for the base model's family (a diffusers
    # folder or hub id: a ControlNetModel for SD 1.x, 2.x or SDXL, e.g.
    # lllyasviel/sd-controlnet-canny for SD 1.5, a FluxControlNetModel for FLUX.1, an
    # SD3ControlNetModel for SD 3.5; its config says which, engine.sketch_control).
    # "": /sketch is off. Front end and workers read it.
    controlnet_edges: str = setting("", Text("a ControlNet folder or hub id"))
    # /sketch follow:depth: a ControlNet trained on depth maps for the base's family, and
    # the transformers depth estimator (AutoModelForDepthEstimation: DPT, Depth Anything)
    # that makes them from the member's picture on the worker. Both or neither.
    controlnet_depth: str | None = setting(None, Text("a ControlNet folder or hub id"))
    depth_estimator: str | None = setting(None, Text("a depth-estimation folder or hub id"))
    checkpoint_every_steps: int = setting(
        _TRAIN.checkpoint_every_steps, Whole(low=0, high=1_000_000, low_means="every step")
    )
    train_timeout_s: int = setting(6 * 3600, Whole("seconds", low=1, high=7 * DAY_S))

    generate_timeout_s: int = setting(600, Whole("seconds", low=1, high=DAY_S))

    # Uploads.
    max_upload_bytes: int = setting(_UPLOADS.max_bytes, Whole(low=1024, high=2**34))
    max_upload_pixels: int = setting(_UPLOADS.max_pixels, Whole(low=64 * 64, high=2**31))
    # Per message (an upload, /optout), checked before any image is decoded.
    max_upload_files: int = setting(_UPLOADS.max_files, Whole(low=1, high=1000))
    max_upload_total_bytes: int = setting(_UPLOADS.max_total_bytes, Whole(low=1024, high=2**36))

    # C2PA signing: the operator's certificate chain and key (PEM). Unset: a
    # local CA and signing certificate are made under data_dir/c2pa.
    c2pa_cert_chain: Path | None = setting(None, PathValue("a PEM file"))  # noqa: RUF009
    c2pa_private_key: Path | None = setting(None, PathValue("a PEM file"))  # noqa: RUF009
    # An RFC 3161 time-stamping authority (http(s) URL) for the manifests, so they stay
    # valid after the signing certificate expires. Empty: no timestamp.
    c2pa_tsa_url: str = setting("", Url(schemes=("http", "https"), optional=True))

    # Worker.
    max_loaded_adapters: int = setting(8, Whole(low=1, high=1000))
    # A worker's disk copies of style weights (least recently used go first).
    worker_cache_max_bytes: int = setting(
        2 * 1024**3, Whole(low=0, high=2**50, low_means="only the files in use are kept")
    )
    worker_concurrency: int = setting(1, Whole(low=1, high=64))
    # Same-style requests waiting together share one pipeline call, up to this.
    max_batch_size: int = setting(4, Whole(low=1, high=64))
    # A new style that finds the adapter cache full is hot-swapped into the least
    # recently used style's slot (no UNet walk, no torch.compile recompile);
    # slots are padded to this rank, the largest the trainer makes by default.
    lora_hotswap: bool = setting(True, Flag())
    lora_hotswap_rank: int = setting(16, Whole(low=1, high=1024))
    # Requests in different styles (same size, steps, guidance) share one call
    # through PEFT's per-sample adapters: auto = on a CUDA device only (on the
    # CPU it saves nothing), on, or off.
    mixed_style_batches: str = setting("auto", OneOf(choices=MIXED_STYLE_BATCHES))
    # A worker holds a running job's lease this long and renews it; a job
    # whose worker died is retried once its lease runs out.
    job_lease_s: float = setting(60.0, Number("seconds", low=1, high=3600))
    # Below this much free space (MiB) in the data directory, doctor warns and the
    # front end logs a warning: a full disk loses uploads and results.
    disk_low_free_mb: int = setting(
        10 * 1024, Whole("MiB", low=0, high=2**31, low_means="no warning")
    )

    # Operations.
    # Prometheus metrics on this port (None: no metrics endpoint).
    metrics_port: int | None = setting(None, Whole(low=0, high=65535, low_means="off"))
    metrics_host: str = setting(
        "127.0.0.1", Pattern("a host name or IP address", regex=r"[A-Za-z0-9_.:-]+")
    )
    # The public verify page (stylebot.bot.web): anyone drops an image and reads what
    # /verify tells a stranger. Served by `stylebot run` on this port (0: off), meant to
    # sit behind the operator's reverse proxy.
    verify_web_port: int = setting(0, Whole(low=0, high=65535, low_means="off"))
    verify_web_host: str = setting(
        "127.0.0.1", Pattern("a host name or IP address", regex=r"[A-Za-z0-9_.:-]+")
    )
    # The reverse proxies whose X-Forwarded-For names the visitor (addresses or networks);
    # empty: nobody's, each request is counted against the address it came from.
    verify_web_trusted_proxies: tuple[str, ...] = setting((), Networks())
    log_format: str = setting(
        "text", OneOf(choices=("text", "json"), ignore_case=True)
    )  # text or json
    # Who may run operator-wide admin commands: "platform:user_id", comma-separated.
    operators: str = setting("", Text("platform:user_id, comma-separated"))

    discord_token: str | None = setting(
        None, Pattern("a bot token (no spaces)", secret=True, regex=r"\S+")
    )
    discord_guild_id: int | None = setting(None, Whole(low=1, high=2**63 - 1))
    telegram_token: str | None = setting(
        None, Pattern("a bot token (no spaces)", secret=True, regex=r"\S+")
    )
    # A Bot API server other than api.telegram.org (e.g. a local telegram-bot-api,
    # http://localhost:8081); the bot calls URL/bot<token>/ and URL/file/bot<token>/.
    telegram_api_url: str | None = setting(None, Url(schemes=("http", "https")))

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def controlnets(self) -> dict[str, str]:
        """The ControlNet of each kind /sketch follows (FOLLOW_KINDS), the unset left out."""
        kinds = {"edges": self.controlnet_edges, "depth": self.controlnet_depth}
        return {kind: source for kind, source in kinds.items() if source}

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
            lora_variant=self.train_lora_variant,
            lr_schedule=self.train_lr_schedule,
            lr_warmup=self.train_lr_warmup,
            ema_decay=self.train_ema_decay,
            caption_dropout=self.train_caption_dropout,
            shuffle_tags=self.train_shuffle_tags,
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from defaults < TOML file < environment < explicit overrides.

    Every value is checked against its field's rule, then the rules between fields;
    the first bad one raises SettingsError with one line naming it (see setting_rules).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    # How each value was given, for the error: `STYLEBOT_X=...`, `x = ... in file.toml`.
    sources: dict[str, str] = {}

    path = config_file or _config_path_from(env)
    if path is not None:
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {path} cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
        values.update(from_file)
        sources.update({name: f"{name} in {path}" for name in from_file})

    known = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    for name in known:
        variable = ENV_PREFIX + name.upper()
        env_value = env.get(variable)
        if env_value is None and name in UNPREFIXED_ENV:
            variable = name.upper()
            env_value = env.get(variable)
        if env_value is not None and env_value != "":
            values[name] = env_value
            sources[name] = variable
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
            sources[name] = name

    unknown = {k: v for k, v in values.items() if k not in known}
    rules = {f.name: rule_for(f) for f in dataclasses.fields(Settings)}
    kwargs = {
        name: parse_value(name, values[name], sources[name], rules[name])
        for name in sorted(known)
        if name in values
    }
    settings = Settings(**kwargs, extra=unknown)
    check_between_fields(settings, kwargs, sources)
    _check_operators(settings.operators, sources.get("operators", "operators"))
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


def rule_for(setting_field: dataclasses.Field[Any]) -> Rule | None:
    """A setting's rule: in its field's metadata, or for a PolicySettings field in
    POLICY_RULES."""
    return rule_of(setting_field.metadata) or POLICY_RULES.get(setting_field.name)


def is_few_step_model(base_model: str, variant: str = "auto") -> bool:
    """`variant` "turbo" or "standard" decides; "auto" looks for "turbo" in the
    model's own name (the folder, file or hub repo name: sd-turbo, sdxl-turbo)."""
    if variant != "auto":
        return variant == "turbo"
    return "turbo" in Path(base_model.rstrip("/\\")).name.lower()


def _check_operators(text: str, source: str) -> None:
    """A malformed operators list is a settings error (exit 2) when the settings load,
    not a failure halfway through starting the front end."""
    from stylebot.bot.core.admin_ports import parse_operators  # the rule lives with the admin rules

    try:
        parse_operators(text)
    except ValueError as exc:
        raise SettingsError(f"{shown(source, text)}: {exc}") from exc


def _config_path_from(env: Mapping[str, str]) -> Path | None:
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    default = Path("stylebot.toml")
    return default if default.is_file() else None
