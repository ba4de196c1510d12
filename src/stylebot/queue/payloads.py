"""Job payloads and events: the only data that crosses the queue.

Everything here is plain data that round-trips through JSON, so a worker on
another host needs nothing but Redis and the blob store to do its job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

JobKind = Literal["train", "generate", "caption", "compare"]


class _JsonData:
    """Round-trip a (possibly nested) dataclass through a JSON-ready dict."""

    # Declared, not set: every subclass is a @dataclass, and this tells the type
    # checker so (dataclasses.asdict and fields take only dataclasses).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            nested = _NESTED.get((cls.__name__, f.name))
            if nested is not None and value is not None:
                if isinstance(value, list | tuple):
                    value = tuple(nested.from_dict(v) for v in value)
                else:
                    value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_dict(json.loads(text))


# The values TrainSettings.mixed_precision and .optimizer take (stylebot.trainer.hardware).
MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
OPTIMIZERS = ("auto", "adamw", "adamw8bit")
# TrainSettings.method: what a run trains (stylebot.trainer.embeddings for the token).
TRAIN_METHODS = ("lora", "textual_inversion", "both")
# TrainSettings.lora_variant: the kind of adapter a LoRA run trains
# (stylebot.trainer.adapter_variants): plain LoRA, DoRA, or LoKr (LyCORIS).
LORA_VARIANTS = ("lora", "dora", "lokr")
# TrainSettings.lr_schedule (stylebot.trainer.lr_schedule).
LR_SCHEDULES = ("cosine", "constant")
# What /sketch follows of a picture: its Canny edges or its depth
# (stylebot.engine.sketch_control).
FOLLOW_KINDS = ("edges", "depth")


@dataclass(frozen=True)
class TrainSettings(_JsonData):
    """Hyper-parameters of one LoRA training run."""

    steps: int = 200
    resolution: int = 512
    rank: int = 8
    learning_rate: float = 1e-4
    batch_size: int = 1
    seed: int = 0
    # A worker saves the run (LoRA, optimiser, step, RNG) after this many steps
    # or this many seconds, whichever comes first, so a crashed worker's run
    # resumes from there instead of from step 0.
    checkpoint_every_steps: int = 50
    checkpoint_every_s: float = 30.0
    # Quality and speed (stylebot.trainer): each epoch shows every training
    # image `repeats` times, batched within its aspect-ratio bucket; `flip`
    # adds mirror images. Min-SNR-γ loss weighting (0: plain MSE) and offset
    # noise as in diffusers' train_text_to_image_lora.py.
    repeats: int = 1
    flip: bool = False
    min_snr_gamma: float = 5.0
    noise_offset: float = 0.0
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"  # auto (bf16/fp16 on a GPU, none on a CPU), no, fp16, bf16
    optimizer: str = "auto"  # auto (8-bit AdamW on CUDA with bitsandbytes), adamw, adamw8bit
    # Images kept out of training to measure validation loss against the base model.
    holdout_images: int = 0
    # A worker renders a small watermarked preview of the style as trained so
    # far every this many steps (0: none); a default 200-step run sends two.
    preview_every_steps: int = 80
    # What trains: a LoRA, a new token's embedding (textual inversion), or
    # both (pivotal tuning), the embedding with its own learning rate.
    method: str = "lora"
    embedding_learning_rate: float = 5e-3
    # The adapter a LoRA run trains: lora, dora or lokr (LORA_VARIANTS).
    lora_variant: str = "lora"
    # Learning rate over the run: linear warm-up over this fraction of the
    # steps, then cosine decay to 0 ("cosine") or held ("constant").
    lr_schedule: str = "cosine"
    lr_warmup: float = 0.05
    # Exponential moving average of the adapter's weights (0: off); when on,
    # the average is what is saved as the style.
    ema_decay: float = 0.0
    # Per-image captions (stylebot.trainer.captions): the share of steps an image
    # trains on the trigger alone, and whether its comma-separated tags are shuffled.
    caption_dropout: float = 0.0
    shuffle_tags: bool = False


@dataclass(frozen=True)
class TrainJob(_JsonData):
    job_id: str
    style_id: int
    trigger: str
    image_keys: tuple[str, ...]
    settings: TrainSettings = field(default_factory=TrainSettings)
    # Each image's caption, in `image_keys`' order ("": none, the trigger alone);
    # empty for a job queued before captions existed.
    captions: tuple[str, ...] = ()
    # Who asked (any stable id, e.g. "discord:1234"): workers let the jobs of
    # different owners take turns. None: a queue of its own.
    owner: str | None = None
    # What the exported LoRA file's metadata says (engine.lora_files): the
    # style, its licence as an SPDX expression, the consent record, and the
    # base model the front end recorded for it.
    style_name: str = ""
    licence: str = ""
    consent_id: int | None = None
    base_model: str = ""


@dataclass(frozen=True)
class GenerateJob(_JsonData):
    """One generation request. `output_ids` are allocated by the front end so
    that the worker can watermark each image with its record id before the
    image leaves the worker; there is one image per output id."""

    job_id: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    output_ids: tuple[str, ...]
    style_id: int | None = None
    style_name: str | None = None
    lora_key: str | None = None
    trigger: str | None = None
    base_model: str = ""
    # A style's textual-inversion embedding and the token its prompts use.
    embedding_key: str | None = None
    embedding_token: str | None = None
    # A variation: the starting noise moves from `seed`'s towards
    # `variation_seed`'s by `variation_strength` (0 = the same image).
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # Who asked (any stable id, e.g. "discord:1234"): workers let the jobs of
    # different owners take turns. None: a queue of its own.
    owner: str | None = None
    # A restyle (image-to-image): the blob of the picture it starts from (a checked,
    # metadata-free upload, or a stylebot output as stored, manifest and all), how
    # much of it is drawn again (0-1), and the output it is when it is one.
    source_key: str | None = None
    strength: float = 0.0
    source_output_id: str | None = None
    # Extend (outpainting): where the picture goes on the job's larger canvas, as
    # (left, top, width, height) in pixels; the rest is drawn anew. Repaint
    # (inpainting): the region drawn anew, as a box in the job's pixels or as a mask
    # image's blob (white is drawn anew).
    keep_box: tuple[int, int, int, int] | None = None
    repaint_box: tuple[int, int, int, int] | None = None
    mask_key: str | None = None
    # Follow a sketch (ControlNet): the picture at `source_key` guides a text-to-image
    # call by its edges ("edges", FOLLOW_KINDS), `strength` being how closely (0-1).
    follow: str | None = None


@dataclass(frozen=True)
class CaptionJob(_JsonData):
    """Propose a caption for each of a member's waiting images (stylebot.engine.captioner)."""

    job_id: str
    image_keys: tuple[str, ...]
    # Who asked: caption jobs take turns with image requests in the generation lane.
    owner: str | None = None


@dataclass(frozen=True)
class CaptionResult(_JsonData):
    """The proposed caption of each image, by its blob key ("" : the captioner wrote
    nothing readable); the front end matches them to the images still waiting."""

    captions: tuple[tuple[str, str], ...]
    seconds: float
    captioner: str = ""


@dataclass(frozen=True)
class CompareJob(_JsonData):
    """Find near-duplicates among a member's waiting images by CLIP image embedding
    (engine.image_similarity): pairs with at least one image from `first_new` on."""

    job_id: str
    image_keys: tuple[str, ...]
    first_new: int = 0
    owner: str | None = None


@dataclass(frozen=True)
class CompareResult(_JsonData):
    """(blob key, blob key, cosine) of each pair of images alike."""

    pairs: tuple[tuple[str, str, float], ...]
    seconds: float
    clip_model: str = ""


@dataclass(frozen=True)
class ValidationPoint(_JsonData):
    """Loss on the held-out images after `step` steps, with the LoRA and without it."""

    step: int
    loss: float
    base_loss: float


@dataclass(frozen=True)
class StyleMetrics(_JsonData):
    """How well a style learned, by the operator's CLIP model (engine.style_metrics).

    Similarities are mean cosines of CLIP image embeddings to the member's
    references, of images drawn from neutral prompts with the style and with
    the base model (same prompts and seeds); `style_fidelity` is the first
    minus the second. CLIP scores (0-100) say how well the images still show
    their prompts; `kid` is the Kernel Inception Distance (on CLIP features)
    between the styled images and the references (None: one reference).
    """

    style_fidelity: float
    styled_similarity: float
    base_similarity: float
    clip_score: float
    base_clip_score: float
    kid: float | None
    samples: int
    clip_model: str


@dataclass(frozen=True)
class TrainedBase(_JsonData):
    """The base model a style trained on, as the worker loaded it: what the style's
    record and its export say of it (issue 16, "Licences")."""

    # The folder's or hub id's model name, or the single file's name.
    name: str
    # sd15, sd2, sdxl, flux-dev, flux-schnell, sd3-medium or sd3-large.
    variant: str
    # A single-file checkpoint's SHA-256; "" for a diffusers folder or hub id.
    sha256: str
    # The base model's licence (engine.families.LICENCES); "" when not known.
    licence: str
    licence_url: str


@dataclass(frozen=True)
class TrainResult(_JsonData):
    lora_key: str
    steps: int
    final_loss: float
    seconds: float
    # One point per checkpoint and one at the end; empty without held-out images.
    validation: tuple[ValidationPoint, ...] = ()
    # The LoRA in kohya's layout with metadata, for /style export (None: none made).
    export_key: str | None = None
    # The style token's embedding (textual inversion, stylebot.trainer.embeddings);
    # None: not trained. `lora_key` is "" when only the embedding trained.
    embedding_key: str | None = None
    # A PNG of the loss curve and the previews over the run (engine.training_report).
    report_key: str | None = None
    # Measured with the operator's CLIP model; None when none is configured.
    metrics: StyleMetrics | None = None
    # What the style trained on; None from a worker older than this field.
    base: TrainedBase | None = None


@dataclass(frozen=True)
class GeneratedImage(_JsonData):
    output_id: str
    blob_key: str
    seed: int
    # The image's perceptual hash, taken by the worker from the pixels it made (the
    # front end records it for /verify without decoding the image); None from a worker
    # older than this field, when the front end takes it itself.
    fingerprint: str | None = None


@dataclass(frozen=True)
class GenerateResult(_JsonData):
    images: tuple[GeneratedImage, ...]
    seconds: float


@dataclass(frozen=True)
class TrainingPreview(_JsonData):
    """A small image of a style in training, rendered with its trigger as prompt.

    Watermarked like every image a worker makes, with `output_id`
    (`preview_output_id`), so the front end can record it and /verify traces it.
    """

    output_id: str
    blob_key: str
    prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    # As GeneratedImage.fingerprint.
    fingerprint: str | None = None


def preview_output_id(job_id: str, step: int) -> str:
    """The watermark id of a training job's preview at `step`: derived, not random,
    so a worker needs no id from the front end, and a repeated event is one record."""
    return hashlib.sha256(f"{job_id}/preview/{step}".encode()).hexdigest()[:12]


EventKind = Literal["started", "progress", "finished", "failed", "cancelled"]


@dataclass(frozen=True)
class JobEvent(_JsonData):
    """What a worker tells the front end about a job. `result` holds a
    TrainResult or GenerateResult as a dict when `kind == "finished"`."""

    job_id: str
    job_kind: JobKind
    kind: EventKind
    step: int = 0
    total: int = 0
    loss: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    # Progress only: seconds left at the recent pace (None until it is known).
    eta_s: float | None = None
    # Training progress only, now and then: a watermarked image of the style
    # as trained so far.
    preview: TrainingPreview | None = None
    # Failed only: False when trying again cannot help (a damaged stored input).
    retryable: bool = True
    # When the event entered the stream (Unix seconds), set by the front end's reader
    # from the stream entry's id; None where that is not known.
    sent_at: float | None = None

    def train_result(self) -> TrainResult:
        assert self.result is not None
        return TrainResult.from_dict(self.result)

    def generate_result(self) -> GenerateResult:
        assert self.result is not None
        return GenerateResult.from_dict(self.result)

    def compare_result(self) -> CompareResult:
        assert self.result is not None
        result = CompareResult.from_dict(self.result)
        # JSON turns the triples into lists.
        pairs = tuple((str(a), str(b), float(c)) for a, b, c in result.pairs)
        return dataclasses.replace(result, pairs=pairs)

    def caption_result(self) -> CaptionResult:
        assert self.result is not None
        result = CaptionResult.from_dict(self.result)
        # JSON turns the pairs into lists.
        pairs = tuple((str(key), str(text)) for key, text in result.captions)
        return dataclasses.replace(result, captions=pairs)


_NESTED: dict[tuple[str, str], type[_JsonData]] = {
    ("TrainJob", "settings"): TrainSettings,
    ("GenerateResult", "images"): GeneratedImage,
    ("JobEvent", "preview"): TrainingPreview,
    ("TrainResult", "validation"): ValidationPoint,
    ("TrainResult", "metrics"): StyleMetrics,
    ("TrainResult", "base"): TrainedBase,
}
