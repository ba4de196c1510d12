"""The learning rate over a run: linear warm-up, then cosine decay or constant.

As diffusers' `get_cosine_schedule_with_warmup` and kohya's `cosine` scheduler,
with steps counted from 1 so that no step trains at a learning rate of 0: the
first warm-up step gets 1/W of the rate, the last W/W, and the cosine falls
from the full rate at the first step after warm-up towards 0 at the end. The
rate is a function of the step alone, so a resumed run gets the uninterrupted
run's rates without any scheduler state in its checkpoint.
"""

from __future__ import annotations

import math

import torch

from stylebot.queue.payloads import LR_SCHEDULES, TrainSettings


def warmup_steps(settings: TrainSettings) -> int:
    """Steps of linear warm-up: `lr_warmup` of the run, rounded."""
    return round(settings.lr_warmup * settings.steps)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The fraction of the configured learning rate that step `step` (1..total) uses."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if not 1 <= step <= total:
        raise ValueError(f"step {step} is outside 1..{total}")
    if step <= warmup:
        return step / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup - 1) / (total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class ScheduledLearningRate:
    """Sets each of an optimiser's parameter groups to its base rate times `lr_factor`.

    The base rates are read when this is made: before a checkpoint's optimiser
    state (which holds the scheduled rate it was saved at) is loaded.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, settings: TrainSettings) -> None:
        self.optimizer = optimizer
        self.base_rates = [float(group["lr"]) for group in optimizer.param_groups]
        self.total = settings.steps
        self.warmup = warmup_steps(settings)
        self.schedule = settings.lr_schedule
        lr_factor(1, self.total, self.warmup, self.schedule)  # a bad schedule fails now

    def set_for(self, step: int) -> None:
        factor = lr_factor(step, self.total, self.warmup, self.schedule)
        for group, base in zip(self.optimizer.param_groups, self.base_rates, strict=True):
            group["lr"] = base * factor
