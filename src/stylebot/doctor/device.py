"""Doctor checks of the device: the base model loads, and the GPU has the memory to train."""

from __future__ import annotations

import time
from typing import Any

from stylebot.config import Settings
from stylebot.disk_space import GIB
from stylebot.doctor.results import CheckResult, fail, ok, warn

# Training SD 1.5 LoRAs in float16 fits in about 6 GiB; less works only for generating.
GPU_WARN_BYTES = 6 * GIB


def _torch() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def check_model(settings: Settings) -> CheckResult:
    model = settings.model
    if _torch() is None:  # the front end never loads the model
        return warn(
            "model",
            f"{model} not checked: torch is not installed here (a front end image)",
            "run `stylebot doctor` on a worker host to check the model",
        )
    if not settings.base_model and not (settings.tiny_model_dir / "model_index.json").exists():
        return fail(
            "model",
            f"no STYLEBOT_BASE_MODEL, and the tiny demo model is not at {settings.tiny_model_dir}",
            f"set STYLEBOT_BASE_MODEL, or run `stylebot model tiny {settings.tiny_model_dir}`",
        )
    from stylebot.engine.models import ModelLoadError, load_pipeline

    started = time.perf_counter()
    try:
        # As the worker loads it (queue/worker_context.py), so a pass here means it loads there.
        pipeline = load_pipeline(
            model,
            device=settings.device,
            dtype=settings.dtype,
            family=settings.base_model_family,
            config=settings.base_model_config or None,
        )
    except ModelLoadError as exc:
        return fail(
            "model",
            f"{model} does not load: {exc}",
            "set STYLEBOT_BASE_MODEL to a diffusers folder, a .safetensors file or a hub id",
        )
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(
            "model",
            f"{model} does not load: {type(exc).__name__}: {exc}",
            "point STYLEBOT_BASE_MODEL at a diffusers folder or a .safetensors checkpoint",
        )
    device = pipeline.device
    seconds = time.perf_counter() - started
    about, fits = describe_base(pipeline, settings.base_quantization)
    del pipeline
    loaded = f"{model} loads on {device} in {seconds:.1f} s; {about}"
    if not fits:
        return warn(
            "model",
            loaded,
            "use a GPU with more memory, set STYLEBOT_BASE_QUANTIZATION=int8 (FLUX.1, SD 3.5), "
            "or lower STYLEBOT_TRAIN_RESOLUTION",
        )
    return ok("model", loaded)


def describe_base(pipeline: Any, quantization: str) -> tuple[str, bool]:
    """What the worker will run for this base: its family, precision, quantisation,
    memory need against this GPU, and licence; and whether the GPU has the memory
    (True without a GPU: the CPU's memory is the host's)."""
    from stylebot.engine.base_quantization import (
        MEMORY_NEEDS,
        gpu_memory_bytes,
        plan_quantization,
    )
    from stylebot.engine.families import family_variant, licence_for
    from stylebot.engine.models import denoiser, model_family

    variant = family_variant(pipeline) or model_family(pipeline)
    device_type = str(pipeline.device.type)
    gpu_bytes = gpu_memory_bytes(device_type)
    chosen = plan_quantization(quantization, variant, device_type, gpu_bytes)
    dtype = str(next(denoiser(pipeline).parameters()).dtype).removeprefix("torch.")
    need = MEMORY_NEEDS[variant]
    need_gib = need.int8_gib if chosen == "int8" and need.int8_gib else need.full_gib
    licence = licence_for(variant)
    fits = gpu_bytes is None or gpu_bytes >= need_gib * GIB
    if gpu_bytes is None:
        memory = f"training needs about {need_gib:g} GB on a GPU (none here)"
    else:
        verdict = "enough" if fits else "too little"
        memory = (
            f"training needs about {need_gib:g} GB, this GPU has {gpu_bytes / GIB:.1f}: {verdict}"
        )
    about = (
        f"family {variant}, {dtype}, quantisation {chosen}; {memory}; "
        f"licence: {licence.name} ({licence.selling_images})"
    )
    return about, fits


def check_gpu(settings: Settings) -> CheckResult:
    torch = _torch()
    if torch is None:
        return warn(
            "gpu",
            "torch is not installed here (a front end image)",
            "run `stylebot doctor` on each worker host to check its GPU",
        )
    if not torch.cuda.is_available():
        why = (
            "torch is a CPU-only build"
            if torch.version.cuda is None
            else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)"
        )
        if settings.device.startswith("cuda"):
            return fail(
                "gpu",
                f"STYLEBOT_DEVICE={settings.device}, but {why}",
                "install the NVIDIA driver and a CUDA build of torch, or set STYLEBOT_DEVICE=cpu",
            )
        return warn(
            "gpu",
            f"no GPU ({why}): jobs run on the CPU",
            "fine for the tiny model; for real models install a CUDA build of torch",
        )
    lines = []
    smallest = None
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        name = torch.cuda.get_device_name(index)
        lines.append(f"cuda:{index} {name} {free / GIB:.1f}/{total / GIB:.1f} GiB free")
        smallest = total if smallest is None else min(smallest, total)
    found = "; ".join(lines)
    if settings.device == "cpu":
        return warn("gpu", f"{found}, but STYLEBOT_DEVICE=cpu", "set STYLEBOT_DEVICE=auto")
    if smallest is not None and smallest < GPU_WARN_BYTES:
        return warn(
            "gpu",
            f"{found}: under {GPU_WARN_BYTES // GIB} GiB, SD 1.5 training may run out of memory",
            "lower STYLEBOT_TRAIN_RESOLUTION or STYLEBOT_LORA_RANK, or use a bigger GPU",
        )
    return ok("gpu", found)
