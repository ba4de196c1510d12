"""A worker told to stop while Redis is frozen (SIGSTOP: what a network cut to a far
Redis looks like, no reply and no reset) exits: its last calls give up, it does not
wait for a reply that never comes until its service manager kills it.

A real worker process (`python -m stylebot worker`) on the real embedded Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from tests.integration.worker.test_interrupted import _start_worker
from tests.support.redis_outage import redis_pid

from stylebot.bootstrap import FrontEnd
from stylebot.queue.outage import STOPPING_REPLY_WAIT_S
from stylebot.queue.redis_socket import socket_path_for

pytestmark = pytest.mark.slow


async def test_an_idle_worker_stops_while_redis_is_frozen(
    frontend: FrontEnd, tmp_path: Path
) -> None:
    redis = redis_pid(socket_path_for(frontend.settings.data_dir))
    assert redis is not None
    log = tmp_path / "worker.log"
    worker = _start_worker(frontend, log)
    try:
        async with asyncio.timeout(120):
            while "worker ready" not in log.read_text():
                assert worker.poll() is None, log.read_text()
                await asyncio.sleep(0.1)
        os.kill(redis, signal.SIGSTOP)
        try:
            asked = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            # Before: still waiting after 90 s, on the first call of its way out.
            await asyncio.to_thread(worker.wait, 60)
            took_s = time.monotonic() - asked
        finally:
            os.kill(redis, signal.SIGCONT)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert worker.returncode == 0, text
    # Its health key, presence and announcement: each call waits its few seconds.
    assert took_s < 4 * STOPPING_REPLY_WAIT_S + 10, text
    assert "could not remove the presence key" in text
