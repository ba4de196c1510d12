"""What the engine's LoRA tests share: a request, quick-but-visible training settings,
reference images, and pixels to compare."""

from __future__ import annotations

import numpy as np
from PIL import Image

from stylebot.engine.generation_request import GenerationRequest
from stylebot.queue.payloads import TrainSettings

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
