"""Keeps the embedded Redis running: whoever notices it died starts it again.

A process that uses the data directory's embedded Redis (the worker without
REDIS_URL, the console, `stylebot run`) holds a keeper. When its Redis stops
answering, its retry loop calls `revive`: under a file lock, so that two
processes noticing at once start one server, not two fighting over the socket,
it joins the server another process started meanwhile or starts a new one on
the same append-only file, which brings the queue back. A process given
REDIS_URL has no keeper: that server is the operator's to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.redis_socket import EmbeddedRedisError

log = logging.getLogger(__name__)

# A revival takes a few seconds at worst; no point trying more often than this.
REVIVE_EVERY_S = 2.0


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedRedisKeeper:
    """The embedded Redis this process uses (None: REDIS_URL, nothing to keep)."""

    def __init__(self, server: EmbeddedRedis | None) -> None:
        self.server = server
        self._last_try = -REVIVE_EVERY_S
        self._reviving = asyncio.Lock()

    async def revive(self) -> None:
        """Start the embedded Redis again if it died (no-op without one)."""
        if self.server is None:
            return
        async with self._reviving:
            if time.monotonic() - self._last_try < REVIVE_EVERY_S:
                return
            self._last_try = time.monotonic()
            await asyncio.to_thread(self._revive)

    def _revive(self) -> None:
        old = self.server
        assert old is not None
        with _exclusive(old.redis_dir / "restart.lock"):
            fresh = EmbeddedRedis(old.data_dir, executable=old.executable)
            try:
                fresh.start()
            except EmbeddedRedisError as exc:
                log.error("could not start the embedded Redis again: %s", exc)
                return
        old.abandon()
        self.server = fresh
        if fresh.owned:
            log.warning("the embedded Redis had stopped; started it again at %s", fresh.socket_path)

    def stop(self) -> None:
        """Leave the embedded Redis on exit (see `EmbeddedRedis.stop`)."""
        if self.server is not None:
            self.server.stop()
