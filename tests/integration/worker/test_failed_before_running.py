"""Jobs that fail without ever running still reach their user as "failed".

arq fails some jobs by itself, never calling the job function: one started
more than max_tries times (its workers were SIGKILLed), one whose job key
expired while it waited. And a job may fail before its training begins
(a broken checkpoint record, say). In every case the front end must hear of
it, or it shows the job queued or running forever; a training's checkpoint
goes too. Real embedded Redis, real arq worker; the engine is never reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from tests.support.stored_checkpoints import save_checkpoint

from stylebot.config import Settings
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import QUEUED_JOB_TTL_S, connect
from stylebot.queue.keys import (
    EVENTS_STREAM,
    QUEUE_NAME,
    arq_job_key,
    arq_retry_key,
    checkpoint_key,
)
from stylebot.queue.payloads import JobEvent, TrainJob
from stylebot.queue.recovery import CheckpointStore
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.training_switch import RedisTrainingSwitch
from stylebot.queue.turns import drop_turn
from stylebot.queue.worker import build_worker
from stylebot.storage.blobs import LocalBlobStore

StartWorker = Callable[[], Awaitable[None]]


class NoEngine:
    """These jobs must fail before anything is trained."""

    device_type = "cpu"

    def train(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the engine must not be reached")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[tuple[str, ArqRedis]]:
    with EmbeddedRedis(tmp_path / "redis") as server:
        client = await connect(server.url)
        yield server.url, client
        await client.aclose()


@pytest.fixture
async def start_worker(
    settings: Settings, redis: tuple[str, ArqRedis]
) -> AsyncIterator[StartWorker]:
    """Starts one worker on the test's Redis; stopped at the end of the test."""
    url, _client = redis
    started: list[tuple[Any, asyncio.Task[None]]] = []

    async def start() -> None:
        worker = build_worker(settings, url, handle_signals=False, engine=NoEngine())
        started.append((worker, asyncio.create_task(worker.async_run())))

    yield start
    for worker, task in started:
        worker.handle_sig(signal.SIGTERM)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def _events(client: ArqRedis, job_id: str) -> list[JobEvent]:
    return [
        event
        for _id, fields in await client.xrange(EVENTS_STREAM)
        if (event := JobEvent.from_json(fields[b"event"])).job_id == job_id
    ]


async def _failure(client: ArqRedis, job_id: str, within_s: float = 20) -> JobEvent:
    async with asyncio.timeout(within_s):
        while True:
            failed = [e for e in await _events(client, job_id) if e.kind == "failed"]
            if failed:
                return failed[0]
            await asyncio.sleep(0.05)


async def test_a_job_over_its_tries_is_reported_failed_and_its_checkpoint_dropped(
    settings: Settings, redis: tuple[str, ArqRedis], start_worker: StartWorker, tmp_path: Path
) -> None:
    _url, client = redis
    blobs = LocalBlobStore(settings.blob_dir)
    job = TrainJob("killed-thrice", 1, "t", (await blobs.put(b"image"),), owner="u1")
    await ArqJobQueue(client).enqueue_train(job)
    # Three earlier runs were SIGKILLed after saving a checkpoint: arq counted three tries.
    await save_checkpoint(
        CheckpointStore(client, blobs), job.job_id, b"lora and optimiser state", 150, tmp_path
    )
    saved_blob = await blobs.put(b"lora and optimiser state")
    await client.set(arq_retry_key(job.job_id), 3)

    await start_worker()
    failed = await _failure(client, job.job_id)

    assert failed.job_kind == "train"
    assert failed.error == "the worker stopped 3 times while running it"
    assert await client.get(checkpoint_key(job.job_id)) is None
    with pytest.raises(KeyError):
        await blobs.get(saved_blob)
    assert await client.zrange(QUEUE_NAME, 0, -1) == []


async def test_a_job_key_lives_as_long_as_a_queued_job_may_wait(
    redis: tuple[str, ArqRedis],
) -> None:
    _url, client = redis
    await ArqJobQueue(client).enqueue_train(TrainJob("waits", 1, "t", ("0" * 64,)))
    ttl_s = await client.pttl(arq_job_key("waits")) / 1000
    assert QUEUED_JOB_TTL_S - 60 < ttl_s <= QUEUED_JOB_TTL_S
    assert QUEUED_JOB_TTL_S >= 30 * 24 * 3600  # arq's own default, one day, is too short


async def test_an_expired_training_job_waits_out_a_pause_then_is_reported(
    redis: tuple[str, ArqRedis], start_worker: StartWorker
) -> None:
    _url, client = redis
    switch = RedisTrainingSwitch(client)
    await switch.pause("admin")
    await ArqJobQueue(client).enqueue_train(TrainJob("expired", 2, "t", ("0" * 64,)))
    # Its key expires while training is paused (after QUEUED_JOB_TTL_S in real life).
    await client.pexpire(arq_job_key("expired"), 200)
    await asyncio.sleep(0.4)

    await start_worker()
    await asyncio.sleep(2)
    # Paused: a training job, even one whose payload is gone, is not started.
    assert await _events(client, "expired") == []
    assert await client.zrange(QUEUE_NAME, 0, -1) == [b"expired"]

    await switch.resume()
    failed = await _failure(client, "expired")
    assert failed.job_kind == "train"
    assert failed.error == "it waited longer than 30 days in the queue"
    assert await client.zrange(QUEUE_NAME, 0, -1) == []


async def test_an_error_before_training_starts_is_reported(
    settings: Settings, redis: tuple[str, ArqRedis], start_worker: StartWorker
) -> None:
    _url, client = redis
    job = TrainJob("broken-checkpoint", 3, "t", ("0" * 64,), owner="u3")
    # The checkpoint lookup, before the run starts, raises on this record.
    await client.set(checkpoint_key(job.job_id), b"not json")
    await ArqJobQueue(client).enqueue_train(job)

    await start_worker()
    failed = await _failure(client, job.job_id)

    assert failed.error == "the worker hit an error (JSONDecodeError)"
    assert [e.kind for e in await _events(client, job.job_id)] == ["failed"]
    # A failed training leaves no checkpoint behind.
    assert await client.get(checkpoint_key(job.job_id)) is None


async def test_a_failed_training_drops_the_checkpoint_an_earlier_run_left(
    settings: Settings, redis: tuple[str, ArqRedis], start_worker: StartWorker, tmp_path: Path
) -> None:
    _url, client = redis
    blobs = LocalBlobStore(settings.blob_dir)
    # An earlier run saved a checkpoint and died; its reference image is gone since.
    job = TrainJob("image-gone", 4, "t", ("f" * 64,), owner="u4")
    await ArqJobQueue(client).enqueue_train(job)
    await save_checkpoint(
        CheckpointStore(client, blobs), job.job_id, b"state at step 40", 40, tmp_path
    )
    saved_blob = await blobs.put(b"state at step 40")

    await start_worker()
    failed = await _failure(client, job.job_id)

    assert failed.error == "an input file is missing from storage"
    # Nothing will resume a failed run: its checkpoint (tens of MB, really) goes.
    for _ in range(200):  # 10 s
        if await client.get(checkpoint_key(job.job_id)) is None:
            break
        await asyncio.sleep(0.05)
    assert await client.get(checkpoint_key(job.job_id)) is None
    with pytest.raises(KeyError):
        await blobs.get(saved_blob)


async def test_a_job_of_unknown_kind_is_not_started_while_training_is_paused(
    redis: tuple[str, ArqRedis], start_worker: StartWorker
) -> None:
    _url, client = redis
    await RedisTrainingSwitch(client).pause("admin")
    await ArqJobQueue(client).enqueue_train(TrainJob("unknown", 5, "t", ("0" * 64,)))
    # Neither its payload nor its turn says what it is: it may be a training job.
    await drop_turn(client, "unknown")
    await client.delete(arq_job_key("unknown"))

    await start_worker()
    await asyncio.sleep(2)
    assert await client.zrange(QUEUE_NAME, 0, -1) == [b"unknown"]
    assert await _events(client, "unknown") == []
