"""Preview images during a training run: a small image with the LoRA as trained so
far, every `TrainSettings.preview_every_steps` steps, finished like any output."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
    StableDiffusion3Pipeline,
)
from PIL import Image

from stylebot.config import FEW_STEP_MAX_STEPS
from stylebot.engine.generator import FEW_STEP_GUIDANCE
from stylebot.engine.models import AnyPipeline, denoiser
from stylebot.queue.payloads import GenerateJob, TrainingPreview, TrainSettings, preview_output_id

if TYPE_CHECKING:
    from stylebot.engine.runtime import FinishedImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPreviews:
    """Where a training run's preview images go (see `TrainSettings.preview_every_steps`).

    `deliver(step, preview, image)` runs on the device thread, inside the
    training loop: it should hand the image on, not wait for storage.
    """

    job_id: str
    deliver: Callable[[int, TrainingPreview, FinishedImage], None]


# Small and quick: a preview shows where the style is going, and it holds up
# the training run while it renders.
PREVIEW_SIZE = 256
PREVIEW_STEPS = 12
PREVIEW_GUIDANCE = 7.5


# Job `job_id`'s preview at a step, drawn and finished (`StyleEngine`'s).
RenderPreview = Callable[[str, int], "tuple[TrainingPreview, FinishedImage]"]


def with_previews(
    on_progress: Callable[[int, int, float], None] | None,
    settings: TrainSettings,
    previews: TrainingPreviews | None,
    render: RenderPreview,
) -> Callable[[int, int, float], None] | None:
    """`on_progress`, plus a preview every `settings.preview_every_steps` steps."""
    every = settings.preview_every_steps
    if previews is None or every <= 0:
        return on_progress

    def progress(step: int, total: int, loss: float) -> None:
        if on_progress is not None:
            on_progress(step, total, loss)
        if step % every == 0 and step < total:  # the last step's image is the style itself
            try:
                preview, image = render(previews.job_id, step)
            except Exception:  # a preview is a courtesy: it never fails the run
                log.exception("training preview at step %d failed; training goes on", step)
                return
            previews.deliver(step, preview, image)

    return progress


def preview_guidance(few_step: bool) -> float:
    """A few-step (turbo) model is distilled without classifier-free guidance."""
    return FEW_STEP_GUIDANCE if few_step else PREVIEW_GUIDANCE


def preview_job(
    job_id: str, trigger: str, settings: TrainSettings, step: int, *, few_step: bool
) -> GenerateJob:
    """The generation a preview at `step` is: small, quick, the run's seed."""
    return GenerateJob(
        job_id=job_id,
        prompt=trigger,
        negative_prompt="",
        seed=settings.seed,
        # A few-step (turbo) model blurs with more steps than its preset.
        steps=min(PREVIEW_STEPS, FEW_STEP_MAX_STEPS) if few_step else PREVIEW_STEPS,
        guidance=preview_guidance(few_step),
        width=PREVIEW_SIZE,
        height=PREVIEW_SIZE,
        output_ids=(preview_output_id(job_id, step),),
    )


# The prompt's encoding as the pipeline takes it (prompt_embeds=... and the rest).
EncodedPrompt = dict[str, torch.Tensor]


@torch.no_grad()
def encode_preview_prompt(pipeline: AnyPipeline, prompt: str, guidance: float) -> EncodedPrompt:
    """A FLUX.1 or SD 3.5 run's preview prompt, encoded before the run: on a GPU their
    text encoders leave it for the run (trainer.flow_captions), so a preview drawn
    from the text would call encoders that are no longer there. {} for the SD
    families, whose runs keep their encoders."""
    if isinstance(pipeline, FluxPipeline):
        device = pipeline.transformer.device
        embeds, pooled, _ids = pipeline.encode_prompt(prompt, None, device=device)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if isinstance(pipeline, StableDiffusion3Pipeline):
        device = pipeline.transformer.device
        embeds, negative, pooled, negative_pooled = pipeline.encode_prompt(
            prompt, prompt, prompt, device=device, do_classifier_free_guidance=guidance > 1
        )
        encoded = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if negative is not None and negative_pooled is not None:
            encoded |= {
                "negative_prompt_embeds": negative,
                "negative_pooled_prompt_embeds": negative_pooled,
            }
        return encoded
    return {}


def draw_preview(
    pipeline: AnyPipeline, trigger: str, job: GenerateJob, encoded: EncodedPrompt | None = None
) -> Image.Image:
    """The preview's image, unfinished; from `encoded` (`encode_preview_prompt`) when
    given, else from the text.

    Called between two training steps: the training adapter is the active
    one, so the pipeline is called directly (the Generator would switch
    adapters), with the UNet (or transformer) in eval mode and back to training after.
    """
    unet = denoiser(pipeline)
    was_training = unet.training
    unet.eval()
    prompt: dict[str, object] = dict(encoded) if encoded else {"prompt": trigger}
    try:
        with torch.no_grad():
            result = pipeline(
                **prompt,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance,
                width=job.width,
                height=job.height,
                generator=torch.Generator(device="cpu").manual_seed(job.seed),
                output_type="pil",
            )
    finally:
        if was_training:
            unet.train()
    image: Image.Image = result.images[0]
    return image


def preview_record(image: FinishedImage, trigger: str, job: GenerateJob) -> TrainingPreview:
    """What the worker reports of a finished preview image."""
    return TrainingPreview(
        output_id=image.output_id,
        blob_key="",  # the worker fills it in once it has stored the image
        prompt=trigger,
        seed=job.seed,
        steps=job.steps,
        guidance=job.guidance,
        width=job.width,
        height=job.height,
        fingerprint=image.fingerprint,
    )
