"""LoRA training of a style on the worker's one shared pipeline.

The worker keeps a single hot pipeline for training and generation, so
`train_lora` borrows the pipeline's UNet, adds a temporary peft adapter, and on
the way out (success, error or cancel) removes it and restores every flag it
touched: the pipeline then generates exactly what it generated before, and the
adapters a `Generator` had loaded keep working. Not thread-safe: the worker runs
one GPU job at a time per pipeline.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict
from PIL import Image

from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.dataset import prepare_training_image

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
TRAINING_ADAPTER = "stylebot_training"
LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished run produced; `seconds` includes encoding and saving."""

    weights_path: Path
    steps: int
    final_loss: float
    seconds: float


class TrainingCancelled(Exception):
    """`should_stop()` returned True; nothing was written."""


def _images_to_tensor(images: Sequence[Image.Image], resolution: int) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1], the VAE's input range."""
    arrays = [
        np.asarray(prepare_training_image(image, resolution), dtype=np.float32) for image in images
    ]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


@torch.no_grad()
def _encode_images(
    pipeline: StableDiffusionPipeline, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each image's latent distribution, one VAE pass per image.

    Caching the distribution (not one sample) keeps the VAE out of the loop
    while every step still draws a fresh latent, as if it had encoded again.
    """
    vae = pipeline.vae
    means, stds = [], []
    for image in pixels:
        batch = image.unsqueeze(0).to(vae.device, vae.dtype)
        dist = vae.encode(batch).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def _encode_caption(pipeline: StableDiffusionPipeline, caption: str) -> torch.Tensor:
    """The caption's CLIP hidden states, encoded once, as the pipeline does at sampling."""
    tokenizer = pipeline.tokenizer
    ids = tokenizer(
        caption,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    text_encoder = pipeline.text_encoder
    return text_encoder(ids.to(text_encoder.device))[0]


def _tuner_layers(unet: torch.nn.Module) -> list[BaseTunerLayer]:
    return [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def _flush_denormals(device: torch.device) -> Iterator[None]:
    """Treat subnormal floats as zero while training on a CPU.

    Tiny gradients make the CPU backward pass hit subnormals, which x86 handles
    10-20x slower (measured: 0.12 s → 2.6 s per step on the tiny model); GPUs
    flush them anyway. torch has no getter for the flag, so it is turned back
    off afterwards, which is torch's default.
    """
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def _borrowed_unet(unet: UNet2DConditionModel, rank: int) -> Iterator[list[torch.nn.Parameter]]:
    """Add the training adapter and make only it trainable; undo it all on exit.

    Yields the LoRA parameters to optimise.
    """
    requires_grad = {p: p.requires_grad for p in unet.parameters()}
    training_modes = {m: m.training for m in unet.modules()}
    layers = _tuner_layers(unet)
    had_adapters = bool(layers) and bool(getattr(unet, "peft_config", None))
    previous_active = list(unet.active_adapters()) if had_adapters else []
    was_disabled = had_adapters and any(layer.disable_adapters for layer in layers)

    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=LORA_TARGET_MODULES,
    )
    with warnings.catch_warnings():
        # Sharing the UNet with a Generator's adapters is the point here.
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        unet.add_adapter(config, adapter_name=TRAINING_ADAPTER)
    try:
        # Only the new adapter is active and trainable; a Generator may have
        # disabled LoRA for a base-model request, so turn adapters back on.
        unet.set_adapter(TRAINING_ADAPTER)
        unet.enable_adapters()
        params = [p for n, p in unet.named_parameters() if TRAINING_ADAPTER in n]
        for param in params:
            # Train in float32 even when the pipeline is float16 on a GPU:
            # AdamW's updates underflow in half precision.
            param.data = param.data.float()
            param.requires_grad_(True)
        unet.train()
        yield params
    finally:
        if had_adapters:
            unet.set_adapter(previous_active)
            unet.delete_adapters(TRAINING_ADAPTER)
            if was_disabled:
                unet.disable_adapters()
            else:
                unet.enable_adapters()
        else:
            # Nothing was loaded before: unwrap the peft layers entirely, so the
            # UNet is the very module tree it was.
            unet.unload_lora()
        for module, mode in training_modes.items():
            module.training = mode
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


def train_lora(
    pipeline: StableDiffusionPipeline,
    images: Sequence[Image.Image],
    trigger: str,
    settings: TrainSettings,
    output_dir: Path,
    *,
    on_progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train a LoRA on the UNet's attention layers so `trigger` evokes `images`.

    The VAE and text encoder are frozen and run once per image / once for the
    caption before the loop. `on_progress(step, total, loss)` is called after
    every step; `should_stop()` is checked before every step and raises
    `TrainingCancelled`. Writes `output_dir/pytorch_lora_weights.safetensors`.
    """
    if not images:
        raise ValueError("train_lora needs at least one image")
    if settings.steps < 1 or settings.batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive: {settings}")
    started = time.perf_counter()
    unet = pipeline.unet
    device = unet.device
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")
    scaling_factor = pipeline.vae.config.scaling_factor

    pixels = _images_to_tensor(images, settings.resolution)
    latent_mean, latent_std = _encode_images(pipeline, pixels)
    caption = _encode_caption(pipeline, trigger).to(device, unet.dtype)

    # Noise, timesteps and batches come from a CPU generator, so a seed gives
    # the same run on any device; the global seed covers the LoRA init.
    rng = torch.Generator(device="cpu").manual_seed(settings.seed)
    loss_value = math.nan
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad(), _flush_denormals(device):
        torch.manual_seed(settings.seed)
        with _borrowed_unet(unet, settings.rank) as params:
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
            total = settings.steps
            for step in range(1, total + 1):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"training cancelled before step {step} of {total}")
                index = torch.randint(0, len(images), (settings.batch_size,), generator=rng)
                sample = torch.randn(latent_mean[index].shape, generator=rng)
                latents = (latent_mean[index] + latent_std[index] * sample.to(device)) * (
                    scaling_factor
                )
                noise = torch.randn(latents.shape, generator=rng).to(device)
                timesteps = torch.randint(
                    0,
                    noise_scheduler.config.num_train_timesteps,
                    (settings.batch_size,),
                    generator=rng,
                ).to(device)
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                if prediction_type == "epsilon":
                    target = noise
                else:
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                prediction = unet(
                    noisy.to(unet.dtype),
                    timesteps,
                    encoder_hidden_states=caption.expand(settings.batch_size, -1, -1),
                ).sample
                loss = F.mse_loss(prediction.float(), target.float())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_value = float(loss.detach())
                if on_progress is not None:
                    on_progress(step, total, loss_value)

            weights = convert_state_dict_to_diffusers(
                get_peft_model_state_dict(unet, adapter_name=TRAINING_ADAPTER)
            )
            output_dir = Path(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            # lora_alpha == rank, which is also what loaders assume without
            # metadata, so the file needs no extra config to load correctly.
            StableDiffusionPipeline.save_lora_weights(
                output_dir,
                unet_lora_layers={k: v.detach().contiguous() for k, v in weights.items()},
                safe_serialization=True,
            )
    return TrainOutcome(
        weights_path=output_dir / WEIGHTS_NAME,
        steps=settings.steps,
        final_loss=loss_value,
        seconds=time.perf_counter() - started,
    )
