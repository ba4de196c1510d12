"""The worker's context: built at start-up, and nothing left running when it stops or
when start-up fails (a device thread left behind would keep the process alive)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from stylebot.config import Settings
from stylebot.engine.models import ModelLoadError
from stylebot.queue.keys import presence_key
from stylebot.queue.worker_context import start_worker_context, stop_worker_context


def _device_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("device")]


class NoCacheEngine:
    """An engine without a cache of its own: no revocations to watch."""


async def test_a_context_started_and_stopped_leaves_nothing_running(
    redis: ArqRedis, tmp_path: Path
) -> None:
    before = _device_threads()
    engine: Any = NoCacheEngine()  # a stand-in for the StyleEngine
    context = await start_worker_context(Settings(data_dir=tmp_path), redis, engine)
    assert context.engine is engine
    assert context.cache_revocations is None
    assert await redis.exists(presence_key(context.worker_id))
    # The device thread is the one that runs jobs' device work.
    assert await context.device.run(threading.current_thread) in _device_threads()
    await stop_worker_context(context)
    assert not await redis.exists(presence_key(context.worker_id))
    assert _device_threads() == before


async def test_a_model_that_does_not_load_fails_start_up_and_stops_the_device_thread(
    redis: ArqRedis, tmp_path: Path
) -> None:
    before = _device_threads()
    settings = Settings(data_dir=tmp_path, base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="no-such-model"):
        await start_worker_context(settings, redis)
    assert _device_threads() == before
    assert [key async for key in redis.scan_iter(match=presence_key("*"))] == []
