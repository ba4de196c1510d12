"""What a training run uses of its device: optimiser, mixed precision, checkpointing.

Each choice depends on the device and on what is installed, and each is logged,
so an operator can see why a run used (say) AdamW rather than 8-bit AdamW.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence

import torch

from stylebot.engine.diffusers_classes import UNet2DConditionModel
from stylebot.queue.payloads import MIXED_PRECISION, OPTIMIZERS, TrainSettings
from stylebot.trainer.embeddings import TrainableToken

log = logging.getLogger(__name__)


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def optimizer_name(requested: str, device: torch.device) -> str:
    """`adamw8bit` (bitsandbytes' AdamW8bit, a quarter of AdamW's state memory) when
    asked for or on `auto`, if bitsandbytes is importable and the device is CUDA; else `adamw`."""
    if requested not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {requested!r}")
    if requested == "adamw":
        return "adamw"
    if device.type == "cuda" and bitsandbytes_available():
        return "adamw8bit"
    if requested == "adamw8bit":
        log.warning("8-bit AdamW needs CUDA and bitsandbytes; using AdamW on %s", device)
    return "adamw"


def make_optimizer(
    params: Sequence[torch.nn.Parameter], learning_rate: float, requested: str, device: torch.device
) -> torch.optim.Optimizer:
    name = optimizer_name(requested, device)
    log.info("training optimiser: %s (asked for %s, device %s)", name, requested, device)
    if name == "adamw8bit":
        import bitsandbytes  # optional, CUDA hosts only

        optimizer: torch.optim.Optimizer = bitsandbytes.optim.AdamW8bit(params, lr=learning_rate)
        return optimizer
    try:
        # One fused kernel for all the LoRA's small tensors instead of a Python
        # loop over them: a few percent of a tiny-model step on the CPU.
        return torch.optim.AdamW(params, lr=learning_rate, fused=True)
    except RuntimeError:  # torch before 2.4 has no fused AdamW on the CPU
        return torch.optim.AdamW(params, lr=learning_rate)


def autocast_dtype(
    requested: str, device: torch.device, model_dtype: torch.dtype = torch.float32
) -> torch.dtype | None:
    """The autocast dtype, or None for none: GPU only.

    `auto` follows a half-precision model (a float16 pipeline trains under
    fp16 autocast rather than converting every weight to bf16 at each op);
    a float32 model gets bf16 where the GPU has it, else fp16. On the CPU
    autocast slows the tiny model down and changes its numbers, so it is
    never used there, whatever was asked.
    """
    if requested not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {requested!r}")
    if device.type != "cuda" or requested == "no":
        return None
    if requested == "fp16":
        return torch.float16
    if requested == "bf16":
        return torch.bfloat16
    if model_dtype in (torch.float16, torch.bfloat16):
        return model_dtype
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[object]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class LossScaler:
    """fp16 gradients underflow without loss scaling; bf16 and fp32 need none."""

    def __init__(self, dtype: torch.dtype | None) -> None:
        self._scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self._scaler is None:
            loss.backward()
            optimizer.step()
            return
        self._scaler.scale(loss).backward()
        self._scaler.step(optimizer)
        self._scaler.update()


@contextlib.contextmanager
def gradient_checkpointing(unet: UNet2DConditionModel, enabled: bool) -> Iterator[None]:
    """Recompute activations in the backward pass instead of keeping them: less memory,
    about a third more compute. Restored on exit, since the UNet is shared.

    diffusers only checkpoints when gradients are enabled, so generation that
    borrows the UNet between steps (under no_grad) runs as usual meanwhile.
    """
    was_on = bool(getattr(unet, "is_gradient_checkpointing", False))
    if enabled == was_on:
        yield
        return
    if enabled:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    try:
        yield
    finally:
        if was_on:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()


def run_optimizer(
    params: list[torch.nn.Parameter],
    token: TrainableToken | None,
    settings: TrainSettings,
    device: torch.device,
) -> torch.optim.Optimizer:
    """AdamW over the LoRA, the token's vector(s) with their own learning rate, or both."""
    if token is None:
        return make_optimizer(params, settings.learning_rate, settings.optimizer, device)
    if not params:
        return make_optimizer(
            token.params, settings.embedding_learning_rate, settings.optimizer, device
        )
    optimizer = make_optimizer(params, settings.learning_rate, settings.optimizer, device)
    optimizer.add_param_group({"params": token.params, "lr": settings.embedding_learning_rate})
    return optimizer
