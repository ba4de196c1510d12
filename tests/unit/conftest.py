"""Unit-test fixtures: the bot core on in-memory fakes of its ports."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, PixelWatermark, RecordingQueue, SteppingClock, bot_on
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork

from stylebot.bot.core.policy import Policy
from stylebot.queue.payloads import TrainSettings


@pytest.fixture
def world() -> CoreWorld:
    uow = InMemoryUnitOfWork()
    blobs = InMemoryBlobStore()
    queue = RecordingQueue()
    # Quotas and rate limits off: their own tests (tests/unit/safety) turn them on.
    policy = Policy(
        base_model="tiny",
        train=TrainSettings(steps=10, resolution=64),
        requests_per_window=0,
        images_per_user_per_day=0,
        trainings_per_user_per_day=0,
        erasures_per_user_per_day=0,
    )
    watermark = PixelWatermark()
    bot = bot_on(uow, blobs, queue, watermark, SteppingClock(), policy)
    return CoreWorld(bot, uow, blobs, queue, watermark)
