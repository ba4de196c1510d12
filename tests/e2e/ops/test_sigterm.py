"""Clean shutdown on SIGTERM (what `docker stop` and `systemctl stop` send).

`stylebot run` and `stylebot worker` run as real processes; each gets SIGTERM
while busy and must exit 0 promptly, leaving nothing behind: the front end its
embedded Redis, the worker the job it was running (finished, or back on the
queue for another worker).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
from tests.fakes.telegram_api import FakeTelegram

from stylebot.bot.console.session import make_sample_images
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.keys import arq_in_progress_key, presence_key
from stylebot.queue.payloads import TrainJob, TrainSettings
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.redis_socket import socket_path_for
from stylebot.storage.blobs import LocalBlobStore
from stylebot.terminal_status import QueueSnapshot, read_snapshot

pytestmark = pytest.mark.slow

TOKEN = "7654321:stylebot-sigterm_token"
STOP_WITHIN_S = 30

# `stylebot run` exactly as the CLI runs it, pointed at the fake Bot API by its setting
# (STYLEBOT_TELEGRAM_API_URL); only the long poll is shortened, so a stop is quick.
RUN_WITH_SHORT_POLLS = """
import sys
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.cli import main

original_init = TelegramAdapter.__init__

def init_with_short_polls(self, *args, **kwargs):
    kwargs.setdefault("poll_timeout_s", 1.0)
    original_init(self, *args, **kwargs)

TelegramAdapter.__init__ = init_with_short_polls
sys.exit(main(["run"]))
"""


def child_env(**settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STYLEBOT_") and k not in ("REDIS_URL", "DISCORD_TOKEN")
    }
    env.update({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return {**env, "PTB_TIMEDELTA": "true", **settings}


def start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_and_wait(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"no exit within {STOP_WITHIN_S} s of SIGTERM")
    return code, time.monotonic() - started


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


async def test_the_front_end_stops_polling_and_exits_0_on_sigterm(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    data_dir = tmp_path / "data"
    log_path = tmp_path / "run.log"
    process = start(
        [
            sys.executable,
            "-c",
            RUN_WITH_SHORT_POLLS,
        ],
        child_env(
            TELEGRAM_TOKEN=TOKEN,
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_TELEGRAM_API_URL=f"http://127.0.0.1:{fake_telegram.port}",
        ),
        log_path,
    )
    try:
        async with asyncio.timeout(60):
            while not any(call.method == "getUpdates" for call in fake_telegram.requests):
                assert process.poll() is None, log_path.read_text()
                await asyncio.sleep(0.1)
        code, took = await asyncio.to_thread(stop_and_wait, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert code == 0, output
    assert took < 15, f"took {took:.1f} s to stop"
    assert "telegram front end running" in output
    assert "Traceback" not in output
    # The embedded Redis it started is shut down with it.
    assert not socket_path_for(data_dir).exists()
    polls = sum(call.method == "getUpdates" for call in fake_telegram.requests)
    await asyncio.sleep(1.5)
    assert sum(call.method == "getUpdates" for call in fake_telegram.requests) == polls


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis the test owns, so it outlives the worker under test."""
    with EmbeddedRedis(tmp_path / "redis-home") as server:
        yield server


def wait_for(
    client: redis.Redis, ready: Callable[[QueueSnapshot], bool], within: float
) -> QueueSnapshot:
    """Poll `stylebot status`'s reading of Redis until `ready` holds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        snapshot = read_snapshot(client)
        if ready(snapshot):
            return snapshot
        time.sleep(0.1)
    raise AssertionError(f"not reached in {within} s: {read_snapshot(client)}")


async def test_a_worker_stopped_mid_training_exits_0_and_the_job_is_not_lost(
    tmp_path: Path, tiny_model_dir: Path, shared_redis: EmbeddedRedis
) -> None:
    data_dir = tmp_path / "data"
    images = make_sample_images(tmp_path / "refs", 2, size=64)
    blobs = LocalBlobStore(data_dir / "blobs")  # the worker's blob store: same directory
    image_keys = tuple([await blobs.put(path.read_bytes()) for path in images])
    process = start(
        [sys.executable, "-m", "stylebot", "worker"],
        child_env(
            REDIS_URL=shared_redis.url,
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_BASE_MODEL=str(tiny_model_dir),
            STYLEBOT_DEVICE="cpu",
        ),
        tmp_path / "worker.log",
    )
    arq_redis = await connect(shared_redis.url)
    client = redis.Redis.from_url(shared_redis.url)
    try:
        # Far more steps than the test waits for: only SIGTERM ends it in time.
        job = TrainJob(
            job_id="sigterm-train",
            style_id=1,
            trigger="sigterm style",
            image_keys=image_keys,
            settings=TrainSettings(steps=100_000, resolution=64, rank=4, learning_rate=1e-3),
        )
        await ArqJobQueue(arq_redis).enqueue_train(job)
        running = await asyncio.to_thread(
            wait_for,
            client,
            lambda s: any(r.job_id == job.job_id and r.step > 0 for r in s.running),
            120,
        )
        (seen,) = running.running
        assert (seen.kind, seen.total) == ("train", 100_000)
        holder = client.get(arq_in_progress_key(job.job_id))
        assert holder is not None
        assert client.exists(presence_key(holder.decode()))

        code, took = await asyncio.to_thread(stop_and_wait, process)
        output = (tmp_path / "worker.log").read_text()
        assert code == 0, output
        assert took < 15, f"took {took:.1f} s to stop mid-training"
        assert "Traceback" not in output

        # Not lost: it waits in the queue for the next worker, nobody runs it.
        after = read_snapshot(client)
        assert [q.job_id for q in after.queued] == [job.job_id], (after, output)
        # A worker took it and gave it back: the shutdown used up none of its tries.
        assert after.queued[0].starts == 0
        assert "interrupted by the worker's shutdown" in output
        assert not after.running
        # Gone at once, not a presence TTL later: /status need not wait to say so.
        assert not client.exists(presence_key(holder.decode()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client.close()
        await arq_redis.aclose()
