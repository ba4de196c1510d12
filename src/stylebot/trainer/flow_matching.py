"""A style's LoRA on a FLUX.1 or SD 3.5 transformer, trained by flow matching.

The model predicts the velocity `noise - latents` at a point `(1 - s) * latents +
s * noise` of the straight path between them. Noise levels `s` are drawn as
these models were trained: logit-normal (a sigmoid of a normal draw), shifted
towards noise by the scheduler's shift (SD 3.5: a fixed 3; FLUX.1-dev: by the
image's size). Each image trains on the trigger and its own caption (dropped or
shuffled per step as the UNet trainer does, trainer.captions); every text the run
draws is encoded once (T5 and CLIP) before the first step, and on a GPU the text
encoders are moved off it for the run (trainer.flow_captions).

Checkpoints, resume, cancel, previews and the held-out validation loss
(trainer.validation, with flow matching's noising) work as for the UNet families.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift
from peft.utils import get_peft_model_state_dict
from PIL import Image

from stylebot.engine.families import LORA_TARGET_MODULES, FlowPipeline, flow_family
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.adapter_run import AdapterRun
from stylebot.trainer.borrowed_unet import (
    TRAINING_ADAPTER,
    borrowed_unet,
    flush_denormals,
    make_training_active,
    other_styles_off,
    text_encoders,
)
from stylebot.trainer.buckets import BatchSchedule, Sample, bucket_images
from stylebot.trainer.captions import TrainingCaptions
from stylebot.trainer.checkpoints import TrainingCheckpoint
from stylebot.trainer.flow_captions import (
    EncodedCaptions,
    FlowConditioning,
    text_encoders_released,
)
from stylebot.trainer.hardware import (
    autocast,
    autocast_dtype,
    gradient_checkpointing,
    make_optimizer,
)
from stylebot.trainer.latents import LatentCache
from stylebot.trainer.lora import WEIGHTS_NAME, TrainOutcome, require_finite_latents
from stylebot.trainer.validation import ValidationSet, split_holdout

# FLUX.1-dev's distilled guidance during training, as diffusers' and ai-toolkit's
# trainers pass it (the value users sample with is about 3.5; 1 trains the base).
FLUX_TRAINING_GUIDANCE = 1.0


def noise_levels(
    count: int, generator: torch.Generator, *, shift: float, mu: float | None
) -> torch.Tensor:
    """`count` noise levels in (0, 1): logit-normal, shifted towards noise. `mu`
    (FLUX.1-dev's resolution-dependent shift) replaces `shift` when given."""
    u = torch.sigmoid(torch.randn(count, generator=generator))
    if mu is not None:
        return math.exp(mu) / (math.exp(mu) + (1.0 / u - 1.0))
    return shift * u / (1.0 + (shift - 1.0) * u)


def _velocity(
    pipeline: FlowPipeline,
    noisy: torch.Tensor,
    levels: torch.Tensor,
    conditioning: FlowConditioning,
) -> torch.Tensor:
    """The transformer's predicted velocity, in the latents' (B, C, h, w) shape."""
    batch, channels, height, width = noisy.shape
    hidden, pooled = conditioning.for_batch(batch)
    if isinstance(pipeline, FluxPipeline):
        packed = pipeline._pack_latents(noisy, batch, channels, height, width)
        image_ids = pipeline._prepare_latent_image_ids(
            batch, height // 2, width // 2, noisy.device, noisy.dtype
        )
        guidance = (
            torch.full((batch,), FLUX_TRAINING_GUIDANCE, device=noisy.device)
            if pipeline.transformer.config.get("guidance_embeds")
            else None
        )
        out = pipeline.transformer(
            hidden_states=packed,
            timestep=levels,  # FLUX.1 takes the level in [0, 1]
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=hidden,
            txt_ids=conditioning.text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        unpacked: torch.Tensor = pipeline._unpack_latents(
            out,
            height * pipeline.vae_scale_factor,
            width * pipeline.vae_scale_factor,
            pipeline.vae_scale_factor,
        )
        return unpacked
    velocity: torch.Tensor = pipeline.transformer(
        hidden_states=noisy,
        timestep=levels * 1000.0,  # SD 3 takes the timestep in [0, 1000]
        encoder_hidden_states=hidden,
        pooled_projections=pooled,
        return_dict=False,
    )[0]
    return velocity


def _flux_mu(scheduler: Any, latents: torch.Tensor) -> float | None:
    """FLUX.1-dev's shift for this image size (its scheduler shifts dynamically), or
    None for a fixed shift (schnell, SD 3.5)."""
    if not scheduler.get("use_dynamic_shifting"):
        return None
    tokens = (latents.shape[2] // 2) * (latents.shape[3] // 2)
    mu: float = calculate_shift(
        tokens,
        scheduler.get("base_image_seq_len", 256),
        scheduler.get("max_image_seq_len", 4096),
        scheduler.get("base_shift", 0.5),
        scheduler.get("max_shift", 1.15),
    )
    return mu


def train_flow_lora(
    pipeline: FlowPipeline,
    images: Sequence[Image.Image],
    trigger: str,
    settings: TrainSettings,
    output_dir: Path,
    *,
    on_progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from: TrainingCheckpoint | None = None,
    on_checkpoint: Callable[[TrainingCheckpoint], None] | None = None,
    captions: Sequence[str] = (),
) -> TrainOutcome:
    """Train a LoRA on the transformer's attention and feed-forward layers so that
    `trigger` evokes `images`; writes `output_dir/pytorch_lora_weights.safetensors`
    in diffusers' layout (`transformer.` keys), which `load_lora_weights` loads.

    `settings.holdout_images` of the images never train but measure, at every
    `checkpoint_every_steps` step and at the end, the loss with the LoRA against
    the base model's (`TrainOutcome.validation`), as in `train_lora`.

    Checkpoints and resume work as in `train_lora` (trainer.checkpoints): the
    state every `checkpoint_every_steps` steps or `checkpoint_every_s` seconds and
    on cancel; a resumed run draws what the uninterrupted one would have.
    Gradient checkpointing, mixed precision and 8-bit AdamW follow the settings
    as there (trainer.hardware).

    `captions`: each image's own, after the trigger, with the settings' caption
    dropout and tag shuffling (trainer.captions); none: the trigger alone."""
    family = flow_family(pipeline)
    if family is None or not images:
        raise ValueError("train_flow_lora needs a FLUX.1 or SD 3.5 pipeline and images")
    prompts = TrainingCaptions.for_run(trigger, captions, len(images), settings)
    if resume_from is not None and not resume_from.continues(settings):
        raise ValueError(f"checkpoint at step {resume_from.step} is not from a run like {settings}")
    started = time.perf_counter()
    transformer = pipeline.transformer
    device = transformer.device
    dtype = transformer.dtype
    # Sides in multiples of 16 px: the transformers see the latent in 2x2 patches.
    bucketed = bucket_images(
        [image.convert("RGB") for image in images], settings.resolution, min_step=16
    )
    train_ids, held_ids = split_holdout(len(images), settings.holdout_images, settings.seed)
    training = [bucketed[i] for i in train_ids]
    latents_cache = LatentCache(pipeline.vae, training, flip=settings.flip, device=device)
    held_cache = LatentCache(
        pipeline.vae, [bucketed[i] for i in held_ids], flip=False, device=device
    )
    validation_set = ValidationSet.flow_matching(
        [held_cache.mean(i).to(dtype) for i in range(len(held_cache))], seed=settings.seed
    )
    require_finite_latents([latents_cache, held_cache], len(images), pipeline.vae.dtype)
    schedule = BatchSchedule(
        [image.bucket for image in training],
        repeats=settings.repeats,
        batch_size=settings.batch_size,
        flip=settings.flip,
        seed=settings.seed,
    )
    scheduler = pipeline.scheduler.config
    amp_dtype = autocast_dtype(settings.mixed_precision, device, dtype)
    rng = torch.Generator(device="cpu").manual_seed(settings.seed)
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices),
        flush_denormals(device),
        other_styles_off([transformer, *text_encoders(pipeline)]),
        gradient_checkpointing(transformer, settings.gradient_checkpointing),
    ):
        first_step = resume_from.step + 1 if resume_from is not None else 1
        encoded = EncodedCaptions(
            pipeline,
            [
                *(prompts.fixed(i) for i in held_ids),
                *(
                    prompts.at_step(train_ids[sample.index], step)
                    for step in range(first_step, settings.steps + 1)
                    for sample in schedule.batch(step)
                ),
            ],
        )

        def conditioning(samples: Sequence[Sample], step: int) -> FlowConditioning:
            return encoded.conditioning(
                [prompts.at_step(train_ids[sample.index], step) for sample in samples]
            )

        torch.manual_seed(settings.seed)
        with (
            text_encoders_released(pipeline),
            torch.enable_grad(),
            borrowed_unet(
                transformer,
                settings.rank,
                settings.lora_variant,
                target_modules=LORA_TARGET_MODULES[family],
            ) as params,
        ):
            names = [n for n, _ in transformer.named_parameters() if TRAINING_ADAPTER in n]
            optimizer = make_optimizer(params, settings.learning_rate, settings.optimizer, device)
            run = AdapterRun(names, params, optimizer, settings, device, amp_dtype, rng)
            if resume_from is not None:
                run.restore(resume_from)

            def held_out_loss() -> float:
                def prediction(
                    noisy: torch.Tensor, levels: torch.Tensor, position: int
                ) -> torch.Tensor:
                    held = encoded.conditioning([prompts.fixed(held_ids[position])])
                    with autocast(device, amp_dtype):
                        return _velocity(pipeline, noisy, levels, held)

                return validation_set.loss(prediction)

            def validate(step: int) -> None:
                if not validation_set:
                    return
                loss = held_out_loss()
                # The base model, on the same noise and levels.
                transformer.disable_adapters()
                try:
                    base_loss = held_out_loss()
                finally:
                    make_training_active(transformer, params)
                run.curve.append((step, loss, base_loss))

            save = (
                None if on_checkpoint is None else lambda step: on_checkpoint(run.checkpoint(step))
            )
            total = settings.steps
            for step in range(run.first_step, total + 1):
                run.stop_if_asked(step, should_stop, save)
                batch = schedule.batch(step)
                latents = latents_cache.draw(batch, rng).to(dtype)
                noise = torch.randn(latents.shape, generator=rng).to(device, dtype)
                shift = float(scheduler.get("shift", 1.0))
                levels = noise_levels(
                    latents.shape[0], rng, shift=shift, mu=_flux_mu(scheduler, latents)
                ).to(device, dtype)
                s = levels.view(-1, 1, 1, 1)
                noisy = (1.0 - s) * latents + s * noise
                with autocast(device, amp_dtype):
                    predicted = _velocity(pipeline, noisy, levels, conditioning(batch, step))
                loss = torch.nn.functional.mse_loss(predicted.float(), (noise - latents).float())
                run.optimise(loss, step)
                run.finish_step(step, on_progress, validate, save)
            weights = get_peft_model_state_dict(transformer, adapter_name=TRAINING_ADAPTER)
            output_dir.mkdir(parents=True, exist_ok=True)
            type(pipeline).save_lora_weights(
                output_dir,
                transformer_lora_layers={k: v.detach().cpu() for k, v in weights.items()},
                weight_name=WEIGHTS_NAME,
            )
    return TrainOutcome(
        weights_path=output_dir / WEIGHTS_NAME,
        steps=settings.steps,
        final_loss=run.loss,
        seconds=time.perf_counter() - started,
        resumed_from=run.first_step - 1,
        validation=run.validation(),
    )
