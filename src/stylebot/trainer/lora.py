"""LoRA training of a style on the worker's one shared pipeline.

The worker keeps a single hot pipeline for training and generation, so
`train_lora` borrows the pipeline's UNet, adds a temporary peft adapter, and on
the way out (success, error or cancel) removes it and restores every flag it
touched: the pipeline then generates exactly what it generated before, and the
adapters a `Generator` had loaded keep working. Not thread-safe: the worker runs
one GPU job at a time per pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from stylebot.engine.diffusers_classes import DDPMScheduler
from stylebot.engine.models import BasePipeline
from stylebot.queue.payloads import TRAIN_METHODS, TrainSettings, ValidationPoint
from stylebot.style_tokens import TRAINING_TOKEN
from stylebot.trainer.adapter_run import AdapterRun, TrainingNotFinite
from stylebot.trainer.adapter_variants import save_adapter
from stylebot.trainer.borrowed_unet import (
    TRAINING_ADAPTER,
    DeviceSharing,
    borrowed_unet,
    flush_denormals,
    frozen_unet,
    lent_out,
    make_training_active,
    other_styles_off,
    text_encoders,
)
from stylebot.trainer.buckets import BatchSchedule, BucketedImage, bucket_images
from stylebot.trainer.captions import CaptionEncoder, TrainingCaptions
from stylebot.trainer.checkpoints import (
    TrainingCheckpoint,
)
from stylebot.trainer.conditioning import (
    TextConditioning,
    with_size_conditioning,
)
from stylebot.trainer.embeddings import (
    EMBEDDING_NAME,
    TrainableToken,
    style_caption,
)
from stylebot.trainer.hardware import (
    autocast,
    autocast_dtype,
    gradient_checkpointing,
    run_optimizer,
)
from stylebot.trainer.latents import LatentCache
from stylebot.trainer.objectives import diffusion_loss, min_snr_weights, sample_noise
from stylebot.trainer.validation import ValidationSet, split_holdout

log = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished run produced; `seconds` includes encoding and saving.

    `weights_path` is None when only a token's embedding trained
    (`TrainSettings.method`); `embedding_path` is None when no embedding did.
    """

    weights_path: Path | None
    steps: int
    final_loss: float
    seconds: float
    # Steps a checkpoint had done before this run continued it (0: from scratch).
    resumed_from: int = 0
    # Held-out loss with the LoRA and with the base model, at each checkpoint step and the end.
    validation: tuple[ValidationPoint, ...] = ()
    embedding_path: Path | None = None


def require_finite_latents(
    caches: Sequence[LatentCache], image_count: int, vae_dtype: torch.dtype
) -> None:
    """`TrainingNotFinite` if the VAE encoded any image to NaN or inf (an fp16 VAE overflowed)."""
    broken = sum(len(cache.non_finite()) for cache in caches)
    if broken:
        raise TrainingNotFinite(
            f"the VAE encoded {broken} of the {image_count} training images to NaN or "
            f"infinite latents (VAE in {vae_dtype}); nothing was trained. Load the "
            "model in float32 (STYLEBOT_DTYPE=float32) or use a VAE that works in float16"
        )


def train_lora(
    pipeline: BasePipeline,
    images: Sequence[Image.Image],
    trigger: str,
    settings: TrainSettings,
    output_dir: Path,
    *,
    on_progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_from: TrainingCheckpoint | None = None,
    on_checkpoint: Callable[[TrainingCheckpoint], None] | None = None,
    device_sharing: DeviceSharing | None = None,
    captions: Sequence[str] = (),
) -> TrainOutcome:
    """Train a LoRA on the UNet's attention layers so `trigger` evokes `images`.

    Each image is fitted to its aspect-ratio bucket; `settings.holdout_images`
    of them never train but measure, at every `checkpoint_every_steps` step
    and at the end, the loss with the LoRA against the base model's
    (`TrainOutcome.validation`). The VAE and text encoder are frozen and run
    before the loop, once per image (twice with flips) and once for the
    caption. `on_progress(step, total, loss)` is called after every step;
    `should_stop()` is checked before every step and raises
    `TrainingCancelled`. Writes `output_dir/pytorch_lora_weights.safetensors`.

    `on_checkpoint` receives the run's state every
    `settings.checkpoint_every_steps` steps or `checkpoint_every_s` seconds,
    and when the run is stopped; `resume_from` continues such a state (it must
    `continue` these settings), giving the weights the uninterrupted run gives.
    Between steps, `device_sharing` may run waiting work on the pipeline.

    `settings.method` "textual_inversion" trains a new token's embedding
    instead of the LoRA, "both" trains the two together (trainer.embeddings);
    the caption then starts with the token and is encoded at every step, and
    the embedding is written to `output_dir/learned_embeds.safetensors`.

    `captions`: each image's own, after the trigger (trainer.captions); none: the
    trigger alone for every image.
    """
    if settings.method not in TRAIN_METHODS:
        raise ValueError(f"method must be one of {TRAIN_METHODS}, got {settings.method!r}")
    trains_lora = settings.method in ("lora", "both")
    token = TrainableToken(pipeline) if settings.method != "lora" else None
    prompts = TrainingCaptions.for_run(
        style_caption(trigger, TRAINING_TOKEN if token is not None else None),
        captions,
        len(images),
        settings,
    )
    if not images:
        raise ValueError("train_lora needs at least one image")
    if settings.steps < 1 or settings.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive: {settings}")
    if resume_from is not None and not resume_from.continues(settings):
        raise ValueError(f"checkpoint at step {resume_from.step} is not from a run like {settings}")
    started = time.perf_counter()
    unet = pipeline.unet
    device = unet.device
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")

    # Aspect-ratio buckets; held-out images are encoded for validation only.
    bucketed = bucket_images([_rgb(image) for image in images], settings.resolution)
    train_ids, held_ids = split_holdout(len(images), settings.holdout_images, settings.seed)
    training = [bucketed[i] for i in train_ids]
    held_out = [bucketed[i] for i in held_ids]
    latents_cache = LatentCache(pipeline.vae, training, flip=settings.flip, device=device)
    schedule = BatchSchedule(
        [image.bucket for image in training],
        repeats=settings.repeats,
        batch_size=settings.batch_size,
        flip=settings.flip,
        seed=settings.seed,
    )
    # Read once: diffusers' `unet.dtype` walks every module (about 7% of a
    # tiny-model step when it was read in the loop).
    unet_dtype = unet.dtype
    held_cache = LatentCache(pipeline.vae, held_out, flip=False, device=device)
    validation_set = ValidationSet.diffusion(
        [held_cache.mean(i) for i in range(len(held_cache))],
        noise_scheduler,
        prediction_type,
        seed=settings.seed,
    )
    amp_dtype = autocast_dtype(settings.mixed_precision, device, unet_dtype)
    require_finite_latents([latents_cache, held_cache], len(images), pipeline.vae.dtype)

    # Noise, timesteps and batches come from a CPU generator, so a seed gives
    # the same run on any device; the global seed covers the LoRA init.
    rng = torch.Generator(device="cpu").manual_seed(settings.seed)
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices),
        torch.enable_grad(),
        flush_denormals(device),
        gradient_checkpointing(unet, settings.gradient_checkpointing),
        # No other style's adapter while the caption is encoded and the run
        # trains: the text encoders' always, the UNet's when no LoRA borrows it
        # (`borrowed_unet` makes its training adapter the only active one).
        other_styles_off(text_encoders(pipeline) + ([] if trains_lora else [unet])) as styles_off,
        # The training token in the tokenizer(s) before the caption is encoded.
        token.attached() if token is not None else nullcontext(),
    ):
        # Encoded once per text, or, while the token's embedding trains, at every use
        # through it (a cache would hold its old value).
        encoder = CaptionEncoder(pipeline, unet_dtype, cache=token is None)

        def conditioning(texts: Sequence[str], of: Sequence[BucketedImage]) -> TextConditioning:
            """The texts' conditioning, with (SDXL) each image's size and crop in its bucket."""
            return with_size_conditioning(encoder.encode(texts), of)

        torch.manual_seed(settings.seed)
        borrowed = (
            borrowed_unet(unet, settings.rank, settings.lora_variant)
            if trains_lora
            else frozen_unet(unet)
        )
        with borrowed as params:
            names = [n for n, _ in unet.named_parameters() if TRAINING_ADAPTER in n]
            optimizer = run_optimizer(params, token, settings, device)
            run = AdapterRun(names, params, optimizer, settings, device, amp_dtype, rng)
            if resume_from is not None:
                run.restore(resume_from)
                if token is not None:
                    token.load_state(resume_from.embedding)

            def held_out_loss() -> float:
                def prediction(
                    noisy: torch.Tensor, timesteps: torch.Tensor, position: int
                ) -> torch.Tensor:
                    with torch.no_grad():
                        held = conditioning(
                            [prompts.fixed(held_ids[position])], [held_out[position]]
                        )
                    index = torch.zeros(noisy.shape[0], dtype=torch.long)
                    with autocast(device, amp_dtype):
                        predicted: torch.Tensor = unet(
                            noisy.to(unet_dtype), timesteps, **held.unet_kwargs(index)
                        ).sample
                    return predicted

                return validation_set.loss(prediction)

            def validate(step: int) -> None:
                if not validation_set:
                    return
                loss = held_out_loss()
                # The base model, on the same noise and timesteps: no LoRA, and
                # the token at its initial embedding.
                if params:
                    unet.disable_adapters()
                if token is not None:
                    token.enabled = False
                try:
                    base_loss = held_out_loss()
                finally:
                    if token is not None:
                        token.enabled = True
                    make_training_active(unet, params)
                run.curve.append((step, loss, base_loss))

            save = (
                None
                if on_checkpoint is None
                else lambda step: on_checkpoint(
                    run.checkpoint(step, token.state() if token is not None else None)
                )
            )
            total = settings.steps
            for step in range(run.first_step, total + 1):
                run.stop_if_asked(step, should_stop, save)
                batch = schedule.batch(step)
                texts = [prompts.at_step(train_ids[sample.index], step) for sample in batch]
                batch_conditioning = conditioning(texts, [training[s.index] for s in batch])
                latents = latents_cache.draw(batch, rng)
                noise = sample_noise(latents.shape, rng, settings.noise_offset).to(device)
                timesteps = torch.randint(
                    0, noise_scheduler.config.num_train_timesteps, (len(batch),), generator=rng
                ).to(device)
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                if prediction_type == "epsilon":
                    target = noise
                else:
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                with autocast(device, amp_dtype):
                    prediction = unet(
                        noisy.to(unet_dtype),
                        timesteps,
                        **batch_conditioning.unet_kwargs(torch.arange(len(batch))),
                    ).sample
                snr_weights = (
                    min_snr_weights(
                        noise_scheduler, timesteps, settings.min_snr_gamma, prediction_type
                    )
                    if settings.min_snr_gamma > 0
                    else None
                )
                run.optimise(diffusion_loss(prediction, target, snr_weights), step)
                run.finish_step(step, on_progress, validate, save)
                if device_sharing is not None and step < total and device_sharing.has_waiting():
                    with lent_out(unet, params, device, styles_off):
                        device_sharing.run_waiting()

            output_dir = Path(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            embedding_path = token.save(output_dir / EMBEDDING_NAME) if token is not None else None
            weights_path = None
            if trains_lora:
                # alpha == rank (adapter_variants): loaders assume that without metadata.
                save_adapter(pipeline, unet, TRAINING_ADAPTER, output_dir)
                weights_path = output_dir / WEIGHTS_NAME
    return TrainOutcome(
        weights_path=weights_path,
        steps=settings.steps,
        final_loss=run.loss,
        seconds=time.perf_counter() - started,
        resumed_from=run.first_step - 1,
        validation=run.validation(),
        embedding_path=embedding_path,
    )


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")
