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
from typing import Protocol

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
from stylebot.trainer.checkpoints import TrainingCheckpoint, cpu_copy, run_fingerprint
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
    # Steps a checkpoint had done before this run continued it (0: from scratch).
    resumed_from: int = 0


class TrainingCancelled(Exception):
    """`should_stop()` returned True; no weights were written (a checkpoint may have been)."""


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

    Yields the LoRA parameters to optimise. Generation may run between steps
    (see `DeviceSharing`) and load or evict a Generator's adapters meanwhile,
    so the exit restores from what is loaded then, not from what was before.
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
        params = [p for n, p in unet.named_parameters() if TRAINING_ADAPTER in n]
        for param in params:
            # Train in float32 even when the pipeline is float16 on a GPU:
            # AdamW's updates underflow in half precision.
            param.data = param.data.float()
        _make_training_active(unet, params)
        yield params
    finally:
        others = [name for name in getattr(unet, "peft_config", {}) if name != TRAINING_ADAPTER]
        if others:
            still_loaded = [name for name in previous_active if name in others]
            # Another adapter active first: peft warns when the active one is deleted.
            unet.set_adapter(still_loaded or others[:1])
            unet.delete_adapters(TRAINING_ADAPTER)
            if was_disabled or not still_loaded:
                unet.disable_adapters()
            else:
                unet.enable_adapters()
        else:
            # Nothing else is loaded: unwrap the peft layers entirely, so the
            # UNet is the very module tree it was.
            unet.unload_lora()
        # Modules a Generator added while training ran were never in training mode.
        unet.eval()
        for module, mode in training_modes.items():
            module.training = mode
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


def _make_training_active(unet: UNet2DConditionModel, params: list[torch.nn.Parameter]) -> None:
    """Only the training adapter active and trainable, the UNet in training mode.

    A Generator may have disabled LoRA for a base-model request, so adapters
    are turned back on; `set_adapter` also freezes every other adapter.
    """
    unet.set_adapter(TRAINING_ADAPTER)
    unet.enable_adapters()
    for param in params:
        param.requires_grad_(True)
    unet.train()


class DeviceSharing(Protocol):
    """Work that waits for the device while a training run holds it.

    The trainer asks between two steps; when something waits, it hands the
    pipeline over (training adapter off, UNet in eval mode, the CPU's float
    flags back to torch's defaults) and takes it back afterwards, so the
    waiting work sees the pipeline exactly as an idle worker would.
    """

    def has_waiting(self) -> bool: ...

    def run_waiting(self) -> None: ...


@contextmanager
def _lent_out(
    unet: UNet2DConditionModel, params: list[torch.nn.Parameter], device: torch.device
) -> Iterator[None]:
    unet.disable_adapters()
    unet.eval()
    on_cpu = device.type == "cpu"
    if on_cpu:
        torch.set_flush_denormal(False)  # generation keeps torch's default numerics
    try:
        with torch.no_grad():
            yield
    finally:
        if on_cpu:
            torch.set_flush_denormal(True)
        _make_training_active(unet, params)


def train_lora(
    pipeline: StableDiffusionPipeline,
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
) -> TrainOutcome:
    """Train a LoRA on the UNet's attention layers so `trigger` evokes `images`.

    The VAE and text encoder are frozen and run once per image / once for the
    caption before the loop. `on_progress(step, total, loss)` is called after
    every step; `should_stop()` is checked before every step and raises
    `TrainingCancelled`. Writes `output_dir/pytorch_lora_weights.safetensors`.

    `on_checkpoint` receives the run's state every
    `settings.checkpoint_every_steps` steps or `checkpoint_every_s` seconds,
    and when the run is stopped; `resume_from` continues such a state (it must
    `continue` these settings), giving the weights the uninterrupted run gives.
    Between steps, `device_sharing` may run waiting work on the pipeline.
    """
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
    scaling_factor = pipeline.vae.config.scaling_factor

    pixels = _images_to_tensor(images, settings.resolution)
    latent_mean, latent_std = _encode_images(pipeline, pixels)
    caption = _encode_caption(pipeline, trigger).to(device, unet.dtype)

    # Noise, timesteps and batches come from a CPU generator, so a seed gives
    # the same run on any device; the global seed covers the LoRA init.
    rng = torch.Generator(device="cpu").manual_seed(settings.seed)
    loss_value = math.nan
    first_step = 1
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad(), _flush_denormals(device):
        torch.manual_seed(settings.seed)
        with _borrowed_unet(unet, settings.rank) as params:
            names = [n for n, _ in unet.named_parameters() if TRAINING_ADAPTER in n]
            optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
            if resume_from is not None:
                _restore(resume_from, names, params, optimizer, rng)
                first_step = resume_from.step + 1
                loss_value = resume_from.loss

            def checkpoint(step: int) -> TrainingCheckpoint:
                return TrainingCheckpoint(
                    step=step,
                    settings=run_fingerprint(settings),
                    loss=loss_value,
                    # Copies: the run goes on changing the live tensors.
                    adapter=cpu_copy(dict(zip(names, params, strict=True))),
                    optimizer=cpu_copy(optimizer.state_dict()),
                    rng_state=rng.get_state(),
                )

            total = settings.steps
            last_saved_at = time.monotonic()
            for step in range(first_step, total + 1):
                if should_stop is not None and should_stop():
                    if on_checkpoint is not None and step > first_step:
                        on_checkpoint(checkpoint(step - 1))
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
                # The last step's state is the result itself: no checkpoint for it.
                due = (
                    step % settings.checkpoint_every_steps == 0
                    or time.monotonic() - last_saved_at >= settings.checkpoint_every_s
                )
                if on_checkpoint is not None and step < total and due:
                    on_checkpoint(checkpoint(step))
                    last_saved_at = time.monotonic()
                if device_sharing is not None and step < total and device_sharing.has_waiting():
                    with _lent_out(unet, params, device):
                        device_sharing.run_waiting()

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
        resumed_from=first_step - 1,
    )


def _restore(
    saved: TrainingCheckpoint,
    names: list[str],
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    rng: torch.Generator,
) -> None:
    if sorted(saved.adapter) != sorted(names):
        raise ValueError("checkpoint does not hold this UNet's training adapter")
    with torch.no_grad():
        for name, param in zip(names, params, strict=True):
            param.copy_(saved.adapter[name].to(param.device, param.dtype))
    optimizer.load_state_dict(saved.optimizer)
    rng.set_state(saved.rng_state)
