"""The shared pipeline's UNet borrowed by a training run, and given back as it was.

The training adapter is added and made the only trainable thing, other styles'
adapters are switched off, and each piece is undone on the way out (success,
error or cancel), also around generation the run lends the device to between
steps (`DeviceSharing`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from stylebot.engine.diffusers_classes import UNet2DConditionModel
from stylebot.engine.families import FlowTransformer
from stylebot.engine.models import AnyPipeline, lora_components
from stylebot.trainer.adapter_variants import LORA_TARGET_MODULES, adapter_config

TRAINING_ADAPTER = "stylebot_training"


def tuner_layers(unet: torch.nn.Module) -> list[BaseTunerLayer]:
    return [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
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


class OtherStylesOff:
    """Other styles' LoRA adapters switched off in `components` while a run trains.

    A Generator leaves the last style it drew with active on the shared
    pipeline; a run must train (and validate and preview) against the base
    model, not that style. `switch_off` records each adapter layer's on/off
    flag and turns it off, `restore` puts the recorded flags back: around
    lent-out generation (which expects the pipeline as an idle worker has it)
    and at the end. Layers a Generator adds meanwhile are recorded then.
    """

    def __init__(self, components: Sequence[torch.nn.Module]) -> None:
        self.components = list(components)
        self._disabled: dict[BaseTunerLayer, bool] = {}
        self._requires_grad: dict[torch.nn.Parameter, bool] = {}

    def _layers(self) -> list[BaseTunerLayer]:
        return [layer for component in self.components for layer in tuner_layers(component)]

    def switch_off(self) -> None:
        layers = self._layers()
        self._disabled = {layer: bool(layer.disable_adapters) for layer in layers}
        self._requires_grad = {
            p: p.requires_grad
            for layer in layers
            for p in layer.parameters()  # type: ignore[attr-defined]  # layers are modules
        }
        for layer in layers:
            layer.enable_adapters(False)

    def restore(self) -> None:
        for layer, disabled in self._disabled.items():
            # peft's enable_adapters also changes requires_grad: put that back too.
            layer.enable_adapters(not disabled)
        for param, flag in self._requires_grad.items():
            param.requires_grad_(flag)


@contextmanager
def other_styles_off(components: Sequence[torch.nn.Module]) -> Iterator[OtherStylesOff]:
    styles_off = OtherStylesOff(components)
    styles_off.switch_off()
    try:
        yield styles_off
    finally:
        styles_off.restore()


def text_encoders(pipeline: AnyPipeline) -> list[torch.nn.Module]:
    return [
        part
        for name, part in lora_components(pipeline).items()
        if name not in ("unet", "transformer")
    ]


@contextmanager
def frozen_unet(unet: UNet2DConditionModel) -> Iterator[list[torch.nn.Parameter]]:
    """No adapter (a textual-inversion-only run): the UNet frozen, in its own mode
    (other styles' adapters are off: `OtherStylesOff`)."""
    requires_grad = {p: p.requires_grad for p in unet.parameters()}
    unet.requires_grad_(False)
    try:
        yield []
    finally:
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


@contextmanager
def borrowed_unet(
    unet: UNet2DConditionModel | FlowTransformer,
    rank: int,
    variant: str = "lora",
    target_modules: Sequence[str] = LORA_TARGET_MODULES,
) -> Iterator[list[torch.nn.Parameter]]:
    """Add the training adapter (`variant`: adapter_variants) and make only it
    trainable; undo it all on exit.

    `unet` is the denoiser: a UNet, or a FLUX.1 / SD 3.5 transformer with its
    family's `target_modules` (stylebot.engine.families.LORA_TARGET_MODULES).

    Yields the LoRA parameters to optimise. Generation may run between steps
    (see `DeviceSharing`) and load or evict a Generator's adapters meanwhile,
    so the exit restores from what is loaded then, not from what was before.
    """
    requires_grad = {p: p.requires_grad for p in unet.parameters()}
    training_modes = {m: m.training for m in unet.modules()}
    layers = tuner_layers(unet)
    had_adapters = bool(layers) and bool(getattr(unet, "peft_config", None))
    previous_active = list(unet.active_adapters()) if had_adapters else []
    was_disabled = had_adapters and any(layer.disable_adapters for layer in layers)

    unet.requires_grad_(False)
    config = adapter_config(variant, rank, target_modules)
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
        make_training_active(unet, params)
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


def make_training_active(
    unet: UNet2DConditionModel | FlowTransformer, params: list[torch.nn.Parameter]
) -> None:
    """Only the training adapter active and trainable, the UNet in training mode.

    A Generator may have disabled LoRA for a base-model request, so adapters
    are turned back on; `set_adapter` also freezes every other adapter.
    No parameters: no adapter trains (textual inversion only), nothing to do.
    """
    if not params:
        return
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
def lent_out(
    unet: UNet2DConditionModel,
    params: list[torch.nn.Parameter],
    device: torch.device,
    styles_off: OtherStylesOff,
) -> Iterator[None]:
    if params:
        unet.disable_adapters()
    styles_off.restore()
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
        make_training_active(unet, params)
        # The generation activated its own style: off again until the run ends.
        styles_off.switch_off()
