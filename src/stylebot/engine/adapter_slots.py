"""The styles' LoRA adapters loaded on a pipeline: a bounded cache of PEFT adapter slots,
hot-swapped in place when a new style finds the cache full."""

from __future__ import annotations

import logging
import math
import warnings
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from peft.tuners.lora import LoraLayer
from safetensors import safe_open

from stylebot.engine.generation_request import LoraWeights
from stylebot.engine.lora_loading import first_line, load_checked_lora
from stylebot.engine.models import AnyPipeline, denoiser, lora_components

log = logging.getLogger(__name__)

# The largest LoRA rank the trainer makes by default (training_defaults.default_rank).
DEFAULT_HOTSWAP_RANK = 16


@dataclass(frozen=True)
class CachedStyle:
    """A style in the adapter cache and the PEFT adapter slot that holds it."""

    path: Path
    slot: str
    # Rank the slot's tensors can hold: padded to the hot-swap rank when they could be.
    capacity: int
    # Text-encoder LoRA layers: diffusers cannot hot-swap those.
    text_encoder: bool
    # Plain LoRA (not DoRA or LoKr): the only kind padded and hot-swapped.
    plain: bool = True


@dataclass(frozen=True)
class _LoraFileShape:
    """What a LoRA file holds, read from its safetensors header only."""

    rank: int
    text_encoder: bool
    # No DoRA magnitudes and no LoKr factors (trainer.adapter_variants).
    plain: bool


def _lora_file_shape(path: Path) -> _LoraFileShape:
    ranks: list[int] = []
    text_encoder = False
    plain = True
    with safe_open(str(path), framework="pt") as tensors:
        for key in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
            # diffusers ("text_encoder."), kohya ("lora_te_", "lora_te1_") and peft layouts.
            if key.startswith(("text_encoder", "lora_te")):
                text_encoder = True
            if any(mark in key for mark in ("magnitude", "dora_scale", ".lokr_")):
                plain = False
            if any(down in key for down in ("lora_A", "lora.down", "lora_down")):
                shape = tensors.get_slice(key).get_shape()
                if len(shape) >= 2:
                    ranks.append(int(shape[0]))
    return _LoraFileShape(rank=max(ranks, default=0), text_encoder=text_encoder, plain=plain)


class AdapterSlots:
    """The styles loaded on `pipeline`, up to `max_loaded_adapters`, least recently
    used evicted (or, with `lora_hotswap`, hot-swapped over: see `Generator`).
    Not thread-safe: the worker runs one GPU job at a time per pipeline."""

    def __init__(
        self,
        pipeline: AnyPipeline,
        *,
        max_loaded_adapters: int,
        lora_hotswap: bool,
        hotswap_rank: int,
    ) -> None:
        if max_loaded_adapters < 1:
            raise ValueError("max_loaded_adapters must be at least 1")
        if hotswap_rank < 1:
            raise ValueError("hotswap_rank must be at least 1")
        self.pipeline = pipeline
        self.max_loaded_adapters = max_loaded_adapters
        self.lora_hotswap = lora_hotswap
        self.hotswap_rank = hotswap_rank
        # Why not diffusers' `enable_lora_hotswap`: it pads only the first
        # adapter loaded after it (our cache fills several slots) and pads
        # every adapter on the UNet at that moment, including a training run's
        # adapter whose parameters the optimiser holds. `_pad_slot` pads just
        # the slot being loaded, before anything is hot-swapped into it.
        # style (adapter) name -> its slot, most recently used last.
        self.cached: OrderedDict[str, CachedStyle] = OrderedDict()
        # Slot loads and hot-swaps, for tests and benchmarks.
        self.loads = 0
        self.hotswaps = 0

    @property
    def loaded_adapters(self) -> tuple[str, ...]:
        """Names of the loaded styles, most recently used last."""
        return tuple(self.cached)

    @property
    def adapter_slots(self) -> dict[str, str]:
        """Style name -> the PEFT adapter (slot) that holds it."""
        return {name: cached.slot for name, cached in self.cached.items()}

    def unload_files(self, stems: Collection[str]) -> int:
        """Unload the adapters loaded from files named `<stem>.*`; how many went."""
        gone = [name for name, cached in self.cached.items() if cached.path.stem in stems]
        for name in gone:
            self._evict(name)
        return len(gone)

    def activate(self, lora: LoraWeights | None) -> None:
        """Make exactly `lora` (or no LoRA) active for the next call."""
        if lora is None:
            if self.cached:
                self.pipeline.disable_lora()
            return
        slot = self.ensure_loaded(lora)
        self.pipeline.enable_lora()
        self.pipeline.set_adapters([slot], adapter_weights=[1.0])

    def ensure_loaded(self, lora: LoraWeights) -> str:
        """`lora` in a slot, marked most recently used; returns the slot's name."""
        path = Path(lora.path)
        cached = self.cached.get(lora.adapter_name)
        if cached is not None and cached.path != path:
            # Same style name, new weights (a retrained style): reload.
            self._evict(lora.adapter_name)
            cached = None
        if cached is not None:
            self.cached.move_to_end(lora.adapter_name)
            return cached.slot
        if len(self.cached) >= self.max_loaded_adapters:
            swapped = self._hotswap_into_oldest(lora.adapter_name, path)
            if swapped is not None:
                return swapped
        while len(self.cached) >= self.max_loaded_adapters:
            self._evict(next(iter(self.cached)))
        slot = self._free_slot()
        # Raises LoraMismatchError, with nothing loaded, unless every
        # layer of the file landed on the model (diffusers skips the rest).
        load_checked_lora(self.pipeline, path, slot)
        self.loads += 1
        shape = _lora_file_shape(path)
        capacity = shape.rank
        if self.lora_hotswap and not shape.text_encoder and shape.plain:
            capacity = self._pad_slot(slot, shape.rank)
        self.cached[lora.adapter_name] = CachedStyle(
            path, slot, capacity, text_encoder=shape.text_encoder, plain=shape.plain
        )
        return slot

    def _hotswap_into_oldest(self, adapter_name: str, path: Path) -> str | None:
        """Hot-swap `path` into the least recently used style's slot; its slot
        name, or None (logged) when hot-swap does not apply."""
        if not self.lora_hotswap:
            return None
        oldest_name, oldest = next(iter(self.cached.items()))
        shape = _lora_file_shape(path)
        refusal = None
        if shape.text_encoder or oldest.text_encoder:
            refusal = "diffusers cannot hot-swap text-encoder LoRA layers"
        elif not (shape.plain and oldest.plain):
            # peft's hot-swap replaces lora_A/lora_B only: a DoRA magnitude would
            # stay the old style's, and LoKr factors are not swapped at all.
            refusal = "only plain LoRA styles are hot-swapped, not DoRA or LoKr"
        elif shape.rank > oldest.capacity:
            refusal = f"rank {shape.rank} is above the slot's {oldest.capacity} (lora_hotswap_rank)"
        if refusal is None:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    self.pipeline.load_lora_weights(
                        str(path), adapter_name=oldest.slot, hotswap=True
                    )
            except (ValueError, RuntimeError) as exc:  # other target modules, alpha patterns
                refusal = first_line(exc)
            else:
                if not self._slot_fits_model(oldest.slot):
                    # PEFT swaps in tensors of any shape; a file made for
                    # another model must be refused by the checked load.
                    refusal = "its layers have other sizes than the model's"
            if refusal is not None:
                # diffusers may have dropped part of the slot: clear the rest.
                self._discard_slot(oldest.slot)
                del self.cached[oldest_name]
            else:
                self._match_scale_to_scaling(oldest.slot)
                del self.cached[oldest_name]
                self.cached[adapter_name] = replace(oldest, path=path)
                self.hotswaps += 1
                return oldest.slot
        log.info(
            "LoRA %s not hot-swapped into %s's slot (%s): unloading and loading instead",
            adapter_name,
            oldest_name,
            refusal,
        )
        return None

    def _evict(self, adapter_name: str) -> None:
        cached = self.cached.pop(adapter_name)
        self.pipeline.delete_adapters([cached.slot])

    def _free_slot(self) -> str:
        used = {cached.slot for cached in self.cached.values()}
        # "slot1" is a substring of "slot11"; PEFT's hot-swap finds a slot's
        # tensors by substring, so the names end in a separator.
        return next(
            name
            for index in range(self.max_loaded_adapters + 1)
            if (name := f"slot{index}_") not in used
        )

    def _lora_layers(self, slot: str) -> list[LoraLayer]:
        return [
            module
            for module in denoiser(self.pipeline).modules()
            if isinstance(module, LoraLayer) and slot in module.lora_A
        ]

    def _pad_slot(self, slot: str, rank: int) -> int:
        """Zero-pad the slot's LoRA matrices to `hotswap_rank` (same output: the
        extra rows and columns are zero) so that a style of any rank up to it
        can be hot-swapped in without new tensors; returns the rank it holds."""
        target = self.hotswap_rank
        if rank >= target:
            return rank
        layers = self._lora_layers(slot)
        if not all(_paddable(layer.lora_A[slot], layer.lora_B[slot]) for layer in layers):
            return rank
        for layer in layers:
            layer.lora_A[slot] = _padded(layer.lora_A[slot], target, down=True)
            layer.lora_B[slot] = _padded(layer.lora_B[slot], target, down=False)
        return target

    def _slot_fits_model(self, slot: str) -> bool:
        """Every layer of the slot maps the base layer's inputs to its outputs."""
        for layer in self._lora_layers(slot):
            base = _weight(layer.get_base_layer())
            down, up = _weight(layer.lora_A[slot]), _weight(layer.lora_B[slot])
            if down.shape[1] != base.shape[1] or up.shape[0] != base.shape[0]:
                return False
            if down.shape[0] != up.shape[1]:
                return False
        return True

    def _match_scale_to_scaling(self, slot: str) -> None:
        """After a hot-swap PEFT updates each layer's `scaling` (alpha / rank of the
        new style) but not the `lora_alpha` and `r` that `set_adapters` computes
        the scaling from again; make those give the new scaling back."""
        for layer in self._lora_layers(slot):
            scaling = float(layer.scaling[slot])
            rank = layer.r[slot]
            root = math.sqrt(rank) if layer.use_rslora.get(slot, False) else rank
            layer.lora_alpha[slot] = scaling * root

    def _discard_slot(self, slot: str) -> None:
        """Remove whatever is left of a slot after a failed hot-swap."""
        for component in lora_components(self.pipeline).values():
            for module in component.modules():
                if isinstance(module, LoraLayer) and slot in module.lora_A:
                    module.delete_adapter(slot)
            config = getattr(component, "peft_config", None)
            if config:
                config.pop(slot, None)


def _paddable(down: torch.nn.Module, up: torch.nn.Module) -> bool:
    if isinstance(down, torch.nn.Linear) and isinstance(up, torch.nn.Linear):
        return True
    return (
        isinstance(down, torch.nn.Conv2d)
        and isinstance(up, torch.nn.Conv2d)
        and down.groups == 1
        and up.groups == 1
    )


def _weight(layer: torch.nn.Module) -> torch.Tensor:
    """The weight of a layer LoRA wraps or adds (a Linear or a Conv2d: all have one)."""
    weight = layer.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"a {type(layer).__name__} has no weight tensor")
    return weight


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's kernel size, stride, padding or dilation: torch types them as
    tuples of any length, but a Conv2d's hold two numbers."""
    first, second = values
    return first, second


def _padded(layer: torch.nn.Module, rank: int, *, down: bool) -> torch.nn.Module:
    """A LoRA down (A) or up (B) projection with `rank` rows (A) or columns (B),
    the ones it did not have zero."""
    if not isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
        raise TypeError(f"cannot pad a {type(layer).__name__}: `_paddable` admits no other")
    weight = layer.weight.data
    bias = layer.bias
    made: torch.nn.Linear | torch.nn.Conv2d
    if isinstance(layer, torch.nn.Linear):
        made = (
            torch.nn.Linear(layer.in_features, rank, bias=bias is not None)
            if down
            else torch.nn.Linear(rank, layer.out_features, bias=bias is not None)
        )
    else:
        made = torch.nn.Conv2d(
            layer.in_channels if down else rank,
            rank if down else layer.out_channels,
            _pair(layer.kernel_size),
            _pair(layer.stride),
            layer.padding if isinstance(layer.padding, str) else _pair(layer.padding),
            _pair(layer.dilation),
            bias=bias is not None,
        )
    made = made.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        made.weight.zero_()
        if down:
            made.weight[: weight.shape[0]] = weight
        else:
            made.weight[:, : weight.shape[1]] = weight
        if bias is not None and made.bias is not None:  # made has a bias iff layer has
            made.bias.copy_(bias)
    made.requires_grad_(layer.weight.requires_grad)
    return made
