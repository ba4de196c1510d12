"""Unit-test fixtures: the bot core on in-memory fakes of its ports."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, PixelWatermark, RecordingQueue, SteppingClock
from tests.fakes.memory import InMemoryBlobStore, InMemoryRepository

from stylebot.bot.core import Policy, StyleBot
from stylebot.queue.payloads import TrainSettings


@pytest.fixture
def world() -> CoreWorld:
    repo = InMemoryRepository()
    blobs = InMemoryBlobStore()
    queue = RecordingQueue()
    policy = Policy(base_model="tiny", train=TrainSettings(steps=10, resolution=64))
    watermark = PixelWatermark()
    bot = StyleBot(repo, blobs, queue, watermark, SteppingClock(), policy)
    return CoreWorld(bot, repo, blobs, queue, watermark)
