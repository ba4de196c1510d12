"""Real Redis outages for tests: SIGKILL the server, wait for things to come back.

No fault is simulated: the redis-server process is killed, as `kill -9` or the
OOM killer would, and whoever notices has to cope.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support.processes import StylebotProcess

__all__ = [
    "kill_redis_server",
    "redis_pid",
    "shut_down_if_running",
    "until_restarted",
    "wait_until",
]


def redis_pid(socket_path: Path) -> int | None:
    """The pid of the redis-server answering on `socket_path`, or None when none answers."""
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def kill_redis_server(socket_path: Path) -> int:
    """SIGKILL the redis-server on `socket_path` and wait until it is gone; its pid."""
    pid = redis_pid(socket_path)
    assert pid is not None, f"no redis-server answers on {socket_path}"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # Our child (the test's own server): reap it, or it stays a zombie.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if _dead(pid):
            return pid
        time.sleep(0.02)
    raise AssertionError(f"redis-server {pid} did not die")


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (it no longer serves anything)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # The state follows the command name, which is in parentheses.
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def shut_down_if_running(socket_path: Path) -> None:
    """Clean-up: stop a server a process under test started and left behind."""
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2)
    with contextlib.suppress(redis.RedisError, OSError):
        client.shutdown(nosave=True)
    client.close()


async def wait_until(
    what: str,
    check: Callable[[], bool],
    within: float,
    *alive: StylebotProcess,
) -> None:
    """Poll `check()` until true; fail at once, with its log, if a process exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        for process in alive:
            assert process.running(), f"while waiting for {what}: {process.describe()}"
        if loop.time() > deadline:
            logs = "\n\n".join(process.describe() for process in alive)
            pytest.fail(f"no {what} within {within} s\n{logs}")
        await asyncio.sleep(0.1)


async def until_restarted(socket_path: Path, killed: int, within: float = 20) -> None:
    """Wait until a redis-server other than `killed` answers on `socket_path`."""
    await wait_until(
        "a restarted Redis", lambda: redis_pid(socket_path) not in (None, killed), within
    )
