"""What the engine is asked for: a generation request and the style (LoRA) it is drawn in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from stylebot.queue.payloads import GenerateJob
from stylebot.trainer.embeddings import StyleEmbedding


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    count: int = 1
    # A variation (AUTOMATIC1111's "variation seed"): each image's starting
    # noise moves from its seed's towards `variation_seed`'s by this much.
    variation_seed: int | None = None
    variation_strength: float = 0.0
    # The style's textual-inversion token, loaded before the call (its prompt names it):
    # the only added token the request's text reaches (stylebot.engine.own_tokens).
    embedding: StyleEmbedding | None = None
    # Image-to-image (restyle): the picture to start from, and how much of it is
    # noised away and drawn again (AUTOMATIC1111's "Denoising strength", 0-1).
    init_image: Image.Image | None = None
    strength: float = 0.0
    # Extend or repaint (inpainting): white is drawn anew, black is kept as it is.
    mask_image: Image.Image | None = None
    # Follow a sketch (ControlNet): `init_image` guides a text-to-image call by its
    # edges ("edges"), `strength` being how closely (the conditioning scale, 0-1).
    follow: str | None = None

    @property
    def own_tokens(self) -> frozenset[str]:
        return frozenset({self.embedding.token}) if self.embedding is not None else frozenset()


@dataclass(frozen=True)
class LoraWeights:
    """A style's LoRA: `path` is a .safetensors file written by `train_lora`."""

    adapter_name: str
    path: Path


# A request and the style it is drawn in (None: the base model), for `generate_mixed`.
StyledRequest = tuple[GenerationRequest, "LoraWeights | None"]


def batch_key(
    request: GenerationRequest,
) -> tuple[int, float, int, int, bool, bool, str | None, float]:
    """Requests with equal keys (and the same LoRA) can share one pipeline call."""
    shape = (request.steps, request.guidance, request.width, request.height)
    modes = (request.init_image is not None, request.mask_image is not None, request.follow)
    return (*shape, *modes, request.strength)


def generation_batch_key(job: GenerateJob, *, mixed_styles: bool = False) -> tuple[object, ...]:
    """Jobs with equal keys can share one pipeline call: same style, steps, guidance, size,
    and all with a negative prompt or all without.

    With `mixed_styles` the style is left out: jobs in different styles share a
    call through per-sample adapters (`StyleEngine.generate_mixed`).
    """
    # SDXL (`force_zeros_for_empty_prompt`) conditions a request without a
    # negative prompt on zeros, but once any request in a call has one, every
    # request's negative is encoded text, "" included: its image would then
    # depend on its batch-mates.
    # A restyle runs the image-to-image pipeline: with restyles of the same strength only
    # (a sketch its kind's ControlNet pipeline).
    shape = (
        job.steps,
        job.guidance,
        job.width,
        job.height,
        bool(job.negative_prompt),
        job.source_key is not None,
        bool(job.mask_key or job.keep_box or job.repaint_box),
        job.follow,
        job.strength,
    )
    if mixed_styles:
        # A textual-inversion embedding changes the text encoder for the whole call.
        return (job.embedding_key, job.embedding_token, *shape)
    return (job.lora_key, job.trigger, job.style_id, *shape)
