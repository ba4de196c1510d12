"""A training run survives a failed checkpoint save, and hands over cleanly on SIGTERM.

Real embedded Redis, real arq workers, the tiny real model:
- a periodic checkpoint that cannot be saved (Redis refuses the write) is a
  warning, and the run still finishes;
- a worker stopped mid-training keeps the job (its lease renewed) until its
  device thread has stopped and written the shutdown checkpoint; only then may
  another worker take the job, and it resumes from that checkpoint, not from
  an older one (the first worker's save is slow here, to make the order plain).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from stylebot.bot.console.session import make_sample_images
from stylebot.config import Settings
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import JobEvent, TrainJob, TrainSettings
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.worker import build_worker
from stylebot.storage.blobs import LocalBlobStore

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SHUTDOWN_SAVE_S = 1.5


class SlowCheckpoints:
    """The tiny engine, with each checkpoint taking SHUTDOWN_SAVE_S longer to write."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.saved_steps: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def train(self, *args: Any, on_checkpoint: Callable[[Path, int], None], **kwargs: Any) -> Any:
        def slow_save(state: Path, step: int) -> None:
            time.sleep(SHUTDOWN_SAVE_S)
            on_checkpoint(state, step)
            self.saved_steps.append(step)

        return self.engine.train(*args, on_checkpoint=slow_save, **kwargs)


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[tuple[str, ArqRedis]]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        client = await connect(server.url)
        yield server.url, client
        await client.aclose()


class Workers:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.running: list[tuple[Any, asyncio.Task[None]]] = []

    def start(self, engine: Any) -> Any:
        worker = build_worker(self.settings, self.url, handle_signals=False, engine=engine)
        self.running.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    async def stop(self, worker: Any) -> None:
        """As on SIGTERM; arq's close() then signals once more (handle_signals=False)."""
        [task] = [t for w, t in self.running if w is worker]
        self.running = [(w, t) for w, t in self.running if w is not worker]
        worker.handle_sig(signal.SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


@pytest.fixture
async def workers(tmp_path: Path, redis: tuple[str, ArqRedis]) -> AsyncIterator[Workers]:
    running = Workers(Settings(data_dir=tmp_path / "data"), redis[0])
    yield running
    for worker, _task in list(running.running):
        await running.stop(worker)


async def _job_events(client: ArqRedis, job_id: str) -> list[JobEvent]:
    return [
        event
        for _id, fields in await client.xrange(EVENTS_STREAM)
        if (event := JobEvent.from_json(fields[b"event"])).job_id == job_id
    ]


async def _until(
    client: ArqRedis, job_id: str, done: Callable[[list[JobEvent]], bool], within_s: float
) -> list[JobEvent]:
    for _ in range(int(within_s / 0.05)):
        if done(events := await _job_events(client, job_id)):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen within {within_s} s: {await _job_events(client, job_id)}")


async def _train_job(tmp_path: Path, settings: Settings, job_id: str, **train: Any) -> TrainJob:
    blobs = LocalBlobStore(settings.blob_dir)
    keys = tuple(
        [await blobs.put(p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2, 64)]
    )
    run = TrainSettings(resolution=64, learning_rate=1e-3, preview_every_steps=0, **train)
    return TrainJob(job_id, 1, "handover style", keys, run, owner="u1")


async def test_a_checkpoint_that_cannot_be_saved_does_not_fail_the_run(
    tmp_path: Path,
    redis: tuple[str, ArqRedis],
    workers: Workers,
    tiny_engine: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _url, client = redis
    job = await _train_job(
        tmp_path, workers.settings, "unsaved", steps=40, checkpoint_every_steps=1
    )
    workers.start(tiny_engine)
    # Redis refuses SET (the checkpoint record) for a while: every save then fails.
    await client.acl_setuser("default", enabled=True, nopass=True, commands=["-set"])
    try:
        with caplog.at_level(logging.WARNING, logger="stylebot.queue.job_bodies"):
            await ArqJobQueue(client).enqueue_train(job)
            await _until(
                client,
                job.job_id,
                lambda seen: any(e.kind == "progress" and e.step >= 3 for e in seen),
                within_s=120,
            )
    finally:
        await client.acl_setuser("default", enabled=True, nopass=True, commands=["+set"])
    events = await _until(
        client, job.job_id, lambda seen: any(e.kind in ("finished", "failed") for e in seen), 120
    )
    assert [e.kind for e in events if e.kind in ("finished", "failed")] == ["finished"]
    assert any("was not saved; training goes on" in r.getMessage() for r in caplog.records)


async def test_a_stopped_worker_hands_its_training_over_only_after_its_last_checkpoint(
    tmp_path: Path, redis: tuple[str, ArqRedis], workers: Workers, tiny_engine: Any
) -> None:
    _url, client = redis
    # Far more steps than the test waits for; no checkpoint but the shutdown one.
    job = await _train_job(
        tmp_path,
        workers.settings,
        "handover",
        steps=100_000,
        checkpoint_every_steps=100_000,
        checkpoint_every_s=100_000.0,
    )
    slow = SlowCheckpoints(tiny_engine)
    first = workers.start(slow)
    await ArqJobQueue(client).enqueue_train(job)
    await _until(
        client,
        job.job_id,
        lambda seen: any(e.kind == "progress" and e.step >= 3 for e in seen),
        within_s=120,
    )
    workers.start(tiny_engine)  # idle, on the same Redis: it takes the job when it may
    await asyncio.sleep(0.5)

    await workers.stop(first)
    [shutdown_step] = slow.saved_steps
    assert shutdown_step >= 3

    events = await _until(
        client, job.job_id, lambda seen: [e.kind for e in seen].count("started") == 2, 60
    )
    started = [e for e in events if e.kind == "started"]
    # The second run resumed from the first one's shutdown checkpoint.
    assert [e.step for e in started] == [0, shutdown_step]
    assert not [e for e in events if e.kind in ("failed", "cancelled", "finished")]
