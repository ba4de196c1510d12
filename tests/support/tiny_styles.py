"""What the engine's LoRA tests share: a request, quick-but-visible training settings,
reference images, and pixels to compare."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from stylebot.engine.generation_request import GenerationRequest
from stylebot.engine.models import BasePipeline
from stylebot.engine.worker_cache import BlobCache, CachedBlob, CacheKind
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

TRIGGER = "sks style"
REQUEST = GenerationRequest(prompt=TRIGGER, seed=11, steps=3, width=64, height=64)
# A high learning rate so a few steps move the output visibly.
STRONG = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-2, seed=0)


def pixels(image: Image.Image) -> np.ndarray:
    """Signed, so differences of two images do not wrap around."""
    return np.asarray(image).astype(np.int16)


def reference_images() -> list[Image.Image]:
    """Two 64 px noise images, the same every call."""
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]


# A style that trains in a moment: enough for tests that need real weights a worker loads.
QUICK = TrainSettings(steps=2, resolution=64, rank=4, learning_rate=1e-3, seed=0)


def quick_lora_bytes(pipeline: BasePipeline, workdir: Path) -> bytes:
    """A real LoRA file for `pipeline`, trained in two steps on the reference images."""
    outcome = train_lora(pipeline, reference_images(), TRIGGER, QUICK, workdir)
    assert outcome.weights_path is not None
    return outcome.weights_path.read_bytes()


def striped_png(width: int, height: int) -> bytes:
    """A picture of one's own (not made by stylebot): green with yellow stripes."""
    picture = Image.new("RGB", (width, height), (20, 140, 90))
    for x in range(0, width, 40):
        picture.paste((240, 220, 40), (x, 0, x + 20, height))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def cached_copy(cache: BlobCache, kind: CacheKind, data: bytes, key: str = "") -> CachedBlob:
    """`data` as the worker's copy of a blob (named `key`, else by its SHA-256), as a
    job body leaves it after fetching it from the store."""
    key = key or hashlib.sha256(data).hexdigest()
    download = cache.download_path(kind, key)
    download.write_bytes(data)
    return cache.adopt(kind, key, download)


def difference_from(picture: bytes, made: bytes) -> np.ndarray:
    """How far each pixel of `made` is from `picture` scaled to its size (the largest of
    the three channels' differences)."""
    with Image.open(io.BytesIO(made)) as result:
        size = result.size
        after = np.asarray(result.convert("RGB")).astype(np.int16)
    with Image.open(io.BytesIO(picture)) as original:
        before = np.asarray(original.convert("RGB").resize(size, Image.Resampling.LANCZOS))
    return np.abs(after - before.astype(np.int16)).max(axis=2)
