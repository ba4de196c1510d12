"""A job that tells how it ended when Redis is gone does not hold a stopping worker
for ever: the shutdown lets it try for a while, then stops it. A job whose work is done
just inside its time limit is not failed for the time its result takes to store.

A real `run_job` on a real Redis; the context holds what `run_job` reaches, and a
grace of half a second instead of a minute.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from stylebot.config import load_settings
from stylebot.queue.connection import connect
from stylebot.queue.events import EventPublisher
from stylebot.queue.job_lifecycle import Interruption, run_job
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.running_jobs import RunningJobs
from stylebot.queue.worker_context import WorkerContext

GRACE_S = 0.5


def _context(tmp_path: Path, client: Redis, **settings: Any) -> WorkerContext:
    return cast(
        WorkerContext,
        SimpleNamespace(
            settings=load_settings(environ={}, data_dir=tmp_path / "data", **settings),
            redis=client,
            events=EventPublisher(client),
            running_jobs=RunningJobs(recording_grace_s=GRACE_S),
            worker_id="worker-1",
        ),
    )


async def test_a_failure_told_through_an_outage_is_stopped_after_the_grace(
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    client = await connect(server.url)
    context = _context(tmp_path, client)
    running = context.running_jobs
    failing = asyncio.Event()

    async def body(interruption: Interruption) -> dict[str, Any]:
        await asyncio.to_thread(server.stop)  # Redis goes away while the job runs
        failing.set()
        raise RuntimeError("the device fell over")

    try:
        job = asyncio.create_task(run_job(context, "generate-1", "generate", (), body))
        await asyncio.wait_for(failing.wait(), 30)
        await asyncio.sleep(0.2)  # telling "failed" now waits for Redis
        assert not job.done()
        asked = time.monotonic()
        assert running.stop_all() == (0, 1)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(job, 30)
        assert GRACE_S <= time.monotonic() - asked < GRACE_S + 5
    finally:
        await client.aclose()
        server.stop()


async def test_a_result_stored_after_the_time_limit_is_not_a_failure(tmp_path: Path) -> None:
    """The work was done in time; storing and telling it (a slow blob store) ran past
    the job's own limit. arq's limit, a minute later, stays the backstop."""
    with EmbeddedRedis(tmp_path / "redis") as server:
        client = await connect(server.url)
        context = _context(tmp_path, client, generate_timeout_s=2)

        async def body(interruption: Interruption) -> dict[str, Any]:
            await asyncio.sleep(1.3)  # the work, in time
            interruption.now_recording()
            await asyncio.sleep(1.2)  # storing its images, past the 2 s limit
            return {"stored": True}

        try:
            assert await run_job(context, "generate-2", "generate", (), body) == {"stored": True}
        finally:
            await client.aclose()
