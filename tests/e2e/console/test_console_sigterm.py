"""`stylebot console` stopped by SIGTERM shuts its embedded Redis down (issue 20), and
killed outright it takes its worker with it.

Python dies on SIGTERM by default, without unwinding: the embedded redis-server
runs in a session of its own, so it was left running for ever. A SIGKILL leaves the
console no say at all: its worker reads the end of the pipe the console held.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest
import redis
from tests.support.processes import StylebotProcess, child_env
from tests.support.redis_outage import redis_pid, shut_down_if_running, wait_until

from stylebot.queue.keys import worker_health_key
from stylebot.queue.redis_socket import socket_path_for

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 20


async def test_sigterm_stops_the_console_and_its_embedded_redis(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    socket_path = socket_path_for(data_dir)
    # stdin stays open: the console waits for the next line, as with a person at it.
    console = StylebotProcess.start(
        "console",
        ["console", "--no-worker"],
        child_env(STYLEBOT_DATA_DIR=str(data_dir)),
        tmp_path / "console.log",
        open_stdin=True,
    )
    try:
        await wait_until(
            "the embedded Redis", lambda: redis_pid(socket_path) is not None, 60, console
        )
        server = redis_pid(socket_path)
        code = await asyncio.to_thread(console.stop, STOP_WITHIN_S)
        assert code == 0, console.describe()
        assert redis_pid(socket_path) is None, f"redis-server {server} still answers"
        assert "Traceback" not in console.log_text()
    finally:
        if console.running():
            console.kill()
        if console.process.stdin is not None:
            console.process.stdin.close()
        shut_down_if_running(socket_path)


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that are still its children."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(found) for found in children.read_text().split()] if children.exists() else []


def alive(pid: int) -> bool:
    """Running, not a zombie (a killed parent's children are reaped by init)."""
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


async def test_a_killed_console_takes_its_worker_with_it(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """SIGKILL (the OOM killer, `kill -9`) leaves the console no clean-up: its worker,
    holding the model (on a GPU, the GPU's memory), must still not outlive it."""
    data_dir = tmp_path / "data"
    socket_path = socket_path_for(data_dir)
    console = StylebotProcess.start(
        "console",
        ["console"],
        child_env(STYLEBOT_DATA_DIR=str(data_dir), STYLEBOT_BASE_MODEL=str(tiny_model_dir)),
        tmp_path / "console.log",
        open_stdin=True,
    )
    workers: list[int] = []

    def worker_serves() -> bool:
        workers[:] = child_pids(console.pid)
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
        try:
            keys = [worker_health_key(f"{socket.gethostname()}-{pid}") for pid in workers]
            return bool(keys) and bool(client.exists(*keys))
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    try:
        await wait_until("the console's worker to serve", worker_serves, 120, console)
        console.kill()
        await wait_until(
            "the worker to stop after its console", lambda: not any(map(alive, workers)), 30
        )
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if console.process.stdin is not None:
            console.process.stdin.close()
        shut_down_if_running(socket_path)
