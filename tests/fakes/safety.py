"""The core on in-memory fakes with the consent ledger, opt-outs and usage to look at.

The fakes themselves: tests/fakes/memory_safety.py (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass

from stylebot.bot.core.policy import Policy
from stylebot.bot.core.service import StyleBot
from stylebot.queue.payloads import TrainSettings
from tests.fakes.core import PixelWatermark, RecordingQueue, SteppingClock, bot_on
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork
from tests.fakes.memory_safety import (
    InMemoryConsentLedger,
    InMemoryOptOutRegistry,
    InMemoryUsageLog,
)

__all__ = [
    "InMemoryConsentLedger",
    "InMemoryOptOutRegistry",
    "InMemoryUsageLog",
    "SafetyWorld",
    "safety_world",
]


@dataclass
class SafetyWorld:
    """The core on fakes, with the consent ledger and the opt-out registry wired in."""

    bot: StyleBot
    uow: InMemoryUnitOfWork
    blobs: InMemoryBlobStore
    queue: RecordingQueue
    ledger: InMemoryConsentLedger
    optouts: InMemoryOptOutRegistry
    usage: InMemoryUsageLog
    clock: SteppingClock


def safety_world(policy: Policy | None = None) -> SafetyWorld:
    uow = InMemoryUnitOfWork()
    blobs = InMemoryBlobStore()
    queue = RecordingQueue()
    clock = SteppingClock()
    bot = bot_on(
        uow,
        blobs,
        queue,
        PixelWatermark(),
        clock,
        policy or Policy(base_model="tiny", train=TrainSettings(steps=10, resolution=64)),
    )
    return SafetyWorld(bot, uow, blobs, queue, uow.ledger, uow.optouts, uow.usage, clock)
