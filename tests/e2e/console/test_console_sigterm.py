"""`stylebot console` stopped by SIGTERM shuts its embedded Redis down (issue 20).

Python dies on SIGTERM by default, without unwinding: the embedded redis-server
runs in a session of its own, so it was left running for ever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.support.processes import StylebotProcess, child_env
from tests.support.redis_outage import redis_pid, shut_down_if_running, wait_until

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
