"""Issue 20 as reported: `kill -9` of the embedded redis-server mid-training.

`stylebot console` (which runs the embedded Redis and a worker child given its
socket as REDIS_URL) trains a style; the redis-server is SIGKILLed while it
trains. The console notices, starts Redis again on the same append-only file,
the worker reconnects, and the user gets "Style ink is ready" as if nothing
had happened. Then the console ends cleanly and takes its Redis down with it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from tests.support.processes import StylebotProcess, child_env
from tests.support.redis_outage import (
    kill_redis_server,
    redis_pid,
    shut_down_if_running,
    until_restarted,
    wait_until,
)

from stylebot.bot.console.session import make_sample_images
from stylebot.queue.redis_socket import socket_path_for
from stylebot.terminal_status import read_snapshot

pytestmark = pytest.mark.slow

STARTUP_S = 180  # the worker child imports torch on a busy machine
TRAIN_STEPS = 400


def training_step(socket_path: Path) -> int:
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
    try:
        running = read_snapshot(client).running
    except (redis.RedisError, OSError):
        return -1
    finally:
        client.close()
    return max((job.step for job in running if job.kind == "train"), default=0)


async def test_training_survives_a_killed_embedded_redis_and_the_user_is_told_it_is_ready(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    socket_path = socket_path_for(data_dir)
    samples = make_sample_images(tmp_path / "refs", 2, size=64)
    console = StylebotProcess.start(
        "console",
        ["console"],
        child_env(
            STYLEBOT_DATA_DIR=str(data_dir),
            STYLEBOT_BASE_MODEL=str(tiny_model_dir),
            STYLEBOT_TRAIN_STEPS=str(TRAIN_STEPS),
            STYLEBOT_TRAIN_RESOLUTION="64",
        ),
        tmp_path / "console.log",
        open_stdin=True,
    )
    stdin = console.process.stdin
    assert stdin is not None
    try:
        script = f"/upload {samples[0]} {samples[1]}\n/consent own-work\n/train ink\n"
        stdin.write(script.encode())
        stdin.flush()
        await wait_until(
            "training progress", lambda: training_step(socket_path) > 10, STARTUP_S, console
        )
        killed = await asyncio.to_thread(kill_redis_server, socket_path)
        await until_restarted(socket_path, killed)

        await wait_until(
            "'Style ink is ready'", lambda: "Style ink is ready" in console.log_text(), 180, console
        )
        assert "Style ink is ready" in console.log_text()
        stdin.write(b"/quit\n")
        stdin.close()
        code = await asyncio.to_thread(console.process.wait, 60)
        assert code == 0, console.describe()
        assert redis_pid(socket_path) is None  # the console took its Redis down
        worker_log = (data_dir / "logs" / "worker.log").read_text()
        assert "Redis is unavailable" in worker_log
        assert "Redis is back" in worker_log
    finally:
        if console.running():
            console.kill()
        shut_down_if_running(socket_path)
