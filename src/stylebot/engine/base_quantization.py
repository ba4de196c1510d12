"""The base transformer in 8-bit weights, and the per-family choice of it.

FLUX.1's transformer is 12 B parameters (24 GB in bf16) and SD 3.5 Large's 8 B:
on the 16 GB cards communities own, a LoRA trains only with the base's weights
in 8 bits (the LoRA itself trains in full precision on top). torchao's int8
weight-only quantisation runs on CUDA and on the CPU (so the tests exercise it),
and peft trains LoRA layers over it (`TorchaoLoraLinear`).

`auto` picks int8 for a flow family when the GPU has less memory than the
family's bf16 LoRA training needs, and none otherwise (always none on a CPU,
where memory is the host's and int8 matmuls are slower).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

BASE_QUANTIZATIONS = ("auto", "none", "int8")
GIB = 1024**3


@dataclass(frozen=True)
class MemoryNeed:
    """GPU memory (GiB) a LoRA run needs on this base: unquantised, and with the
    transformer in int8 (None: not needed, the family is small). As published by
    the trainers named in docs/operations.md (Base models), not measured here."""

    full_gib: float
    int8_gib: float | None


MEMORY_NEEDS: dict[str, MemoryNeed] = {
    "sd15": MemoryNeed(6, None),
    "sd2": MemoryNeed(8, None),
    "sdxl": MemoryNeed(12, None),
    "flux-dev": MemoryNeed(24, 16),
    "flux-schnell": MemoryNeed(24, 16),
    "sd3-medium": MemoryNeed(16, 12),
    "sd3-large": MemoryNeed(24, 16),
}


def plan_quantization(requested: str, variant: str, device_type: str, gpu_bytes: int | None) -> str:
    """ "none" or "int8" for a base of `variant` (sd15, flux-dev, ...) on this device.

    `requested` other than auto is taken as given; auto quantises a flow family's
    transformer on a GPU with less than its full-precision need."""
    if requested not in BASE_QUANTIZATIONS:
        raise ValueError(
            f"base quantization must be one of {BASE_QUANTIZATIONS}, got {requested!r}"
        )
    if requested != "auto":
        return requested
    need = MEMORY_NEEDS.get(variant)
    if device_type != "cuda" or gpu_bytes is None or need is None or need.int8_gib is None:
        return "none"
    return "int8" if gpu_bytes < need.full_gib * GIB else "none"


def gpu_memory_bytes(device_type: str) -> int | None:
    """The total memory of the GPU the worker uses, read at start; None without one."""
    if device_type != "cuda":
        return None
    import torch

    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


def prepare_base(pipeline: Any, requested: str, variant: str, device_type: str) -> str:
    """Plan the base's quantisation for this device (`plan_quantization`) and apply
    it; returns what was chosen."""
    chosen = plan_quantization(requested, variant, device_type, gpu_memory_bytes(device_type))
    if chosen == "int8":
        if getattr(pipeline, "transformer", None) is None:
            raise ValueError(f"int8 base quantisation is for FLUX.1 and SD 3.5, not {variant}")
        quantize_transformer(pipeline)
    return chosen


def quantize_transformer(pipeline: Any) -> None:
    """Put the pipeline's transformer's linear weights in int8 (in place); LoRA
    layers loaded or trained afterwards go on top in the pipeline's dtype."""
    # torchao is imported only here: it loads CUDA kernels (and warns) on import.
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(pipeline.transformer, Int8WeightOnlyConfig())
    log.info("base transformer quantised to int8 weights (torchao)")


def is_quantized(module: Any) -> bool:
    """Whether any of `module`'s weights is a torchao quantised tensor."""
    return any(type(p).__module__.startswith("torchao") for p in module.parameters())
