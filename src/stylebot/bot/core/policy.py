"""Limits and defaults the core enforces, set by the operator (see stylebot.config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stylebot.bot.core.images import ImageLimits
from stylebot.queue.payloads import TrainSettings


@dataclass(frozen=True)
class Policy:
    base_model: str = ""
    train: TrainSettings = field(default_factory=TrainSettings)
    min_train_images: int = 1
    max_train_images: int = 40
    default_steps: int = 25
    max_steps: int = 60
    default_guidance: float = 7.5
    default_size: int = 512
    min_size: int = 256
    max_size: int = 1024
    max_images_per_request: int = 4
    max_prompt_chars: int = 1000
    images: ImageLimits = field(default_factory=ImageLimits)
