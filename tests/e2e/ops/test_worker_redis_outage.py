"""A worker outlives its Redis going away (issue 20).

`stylebot worker` runs as a real process; the redis-server under it is SIGKILLed
mid-training. Without REDIS_URL the worker runs the embedded Redis itself, so it
is the one that notices: it starts the server again (the append-only file brings
the queue back) and the training carries on. With Redis down, SIGTERM still
stops the worker within a bound, as systemd and docker expect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.support.processes import StylebotProcess, child_env
from tests.support.redis_outage import (
    kill_redis_server,
    redis_pid,
    shut_down_if_running,
    wait_until,
)

from stylebot.bot.console.session import make_sample_images
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.payloads import TrainJob, TrainSettings
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.redis_socket import socket_path_for
from stylebot.storage.blobs import LocalBlobStore
from stylebot.terminal_status import read_snapshot

pytestmark = pytest.mark.slow

STARTUP_S = 180  # importing torch on a busy machine
STOP_WITHIN_S = 20


def training_job(job_id: str, image_keys: tuple[str, ...]) -> TrainJob:
    # Far more steps than the test waits for: the run is still going when it ends.
    return TrainJob(
        job_id=job_id,
        style_id=1,
        trigger="outage style",
        image_keys=image_keys,
        settings=TrainSettings(
            steps=100_000, resolution=64, rank=4, learning_rate=1e-3, checkpoint_every_steps=5
        ),
    )


async def sample_image_keys(tmp_path: Path, data_dir: Path) -> tuple[str, ...]:
    blobs = LocalBlobStore(data_dir / "blobs")  # the worker's blob store
    images = make_sample_images(tmp_path / "refs", 2, size=64)
    return tuple([await blobs.put(path.read_bytes()) for path in images])


def training_step(client: redis.Redis, job_id: str) -> int:
    """The step `stylebot status` shows for the running job; -1 when Redis does not answer."""
    try:
        running = read_snapshot(client).running
    except (redis.RedisError, OSError):
        return -1
    return next((job.step for job in running if job.job_id == job_id), 0)


def said(process: StylebotProcess, words: str) -> bool:
    return any(words in str(record.get("message", "")) for record in process.json_log())


def stop(worker: StylebotProcess) -> tuple[int, float]:
    started = time.monotonic()
    code = worker.stop(timeout=STOP_WITHIN_S)
    return code, time.monotonic() - started


async def test_a_worker_restarts_its_killed_embedded_redis_and_training_carries_on(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    image_keys = await sample_image_keys(tmp_path, data_dir)
    socket_path = socket_path_for(data_dir)
    worker = StylebotProcess.start(
        "worker",
        ["worker"],
        child_env(
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_BASE_MODEL=str(tiny_model_dir),
            STYLEBOT_DEVICE="cpu",
            STYLEBOT_LOG_FORMAT="json",
        ),
        tmp_path / "worker.log",
    )
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5)
    try:
        await wait_until(
            "the embedded Redis", lambda: redis_pid(socket_path) is not None, STARTUP_S, worker
        )
        arq_redis = await connect(f"unix://{socket_path}")
        job = training_job("outage-train", image_keys)
        await ArqJobQueue(arq_redis).enqueue_train(job)
        await arq_redis.aclose()
        await wait_until(
            "training progress", lambda: training_step(client, job.job_id) > 0, STARTUP_S, worker
        )

        killed = await asyncio.to_thread(kill_redis_server, socket_path)

        # The worker notices, starts the server again, and the run goes on from
        # where it is (the queue and the job's lease came back from the AOF).
        await wait_until(
            "a new embedded Redis",
            lambda: redis_pid(socket_path) not in (None, killed),
            60,
            worker,
        )
        back_at = training_step(client, job.job_id)
        await wait_until(
            "training progress after the restart",
            lambda: training_step(client, job.job_id) > max(back_at, 0),
            60,
            worker,
        )
        snapshot = read_snapshot(client)
        assert [r.job_id for r in snapshot.running] == [job.job_id]
        assert not snapshot.queued  # one run, not a second copy of the job
        await wait_until("'Redis is back' in its log", lambda: said(worker, "Redis is back"), 30)
        assert said(worker, "Redis is unavailable"), worker.describe()

        code, took = await asyncio.to_thread(stop, worker)
        assert code == 0, worker.describe()
        assert took < STOP_WITHIN_S
    finally:
        if worker.running():
            worker.kill()
        client.close()
        shut_down_if_running(socket_path)


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis the test owns (given to the worker as REDIS_URL), which the test kills."""
    with EmbeddedRedis(tmp_path / "redis-home") as server:
        yield server


async def test_a_worker_obeys_sigterm_while_redis_is_down(
    tmp_path: Path, tiny_model_dir: Path, shared_redis: EmbeddedRedis
) -> None:
    data_dir = tmp_path / "data"
    image_keys = await sample_image_keys(tmp_path, data_dir)
    worker = StylebotProcess.start(
        "worker",
        ["worker"],
        child_env(
            REDIS_URL=shared_redis.url,
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_BASE_MODEL=str(tiny_model_dir),
            STYLEBOT_DEVICE="cpu",
        ),
        tmp_path / "worker.log",
    )
    client = redis.Redis(unix_socket_path=str(shared_redis.socket_path), socket_timeout=5)
    try:
        arq_redis = await connect(shared_redis.url)
        job = training_job("outage-sigterm", image_keys)
        await ArqJobQueue(arq_redis).enqueue_train(job)
        await arq_redis.aclose()
        await wait_until(
            "training progress", lambda: training_step(client, job.job_id) > 0, STARTUP_S, worker
        )
        await asyncio.to_thread(kill_redis_server, shared_redis.socket_path)
        await asyncio.sleep(3)  # the worker meets the outage (and its checkpoint saves fail)
        assert worker.running(), worker.describe()

        code, took = await asyncio.to_thread(stop, worker)
        assert took < STOP_WITHIN_S, worker.describe()
        assert code == 0, worker.describe()
    finally:
        if worker.running():
            worker.kill()
        client.close()
