"""A job's cancel, seen by the device thread between two steps."""

from __future__ import annotations

import asyncio
import logging
import threading

from redis.asyncio import Redis

from stylebot.queue.keys import cancel_key
from stylebot.queue.recovery import stop_helper

log = logging.getLogger(__name__)


class CancelWatch:
    """Watches a job's cancel key from the event loop; the device thread reads `is_set`.

    Checked every CANCEL_POLL_S, well under a training step on a GPU, so a
    cancel takes effect at the next step.
    """

    CANCEL_POLL_S = 0.2
    # After a failed check: a little longer, not to hammer a Redis in trouble.
    CANCEL_RETRY_S = 1.0

    def __init__(self, redis: Redis, job_id: str) -> None:
        self.redis = redis
        self.key = cancel_key(job_id)
        self._flag = threading.Event()
        self._task: asyncio.Task[None] | None = None

    def is_set(self) -> bool:
        return self._flag.is_set()

    async def already_cancelled(self) -> bool:
        return bool(await self.redis.exists(self.key))

    async def _watch(self) -> None:
        failing = False
        while not self._flag.is_set():
            try:
                cancelled = await self.redis.exists(self.key)
            except Exception as exc:
                # A Redis blip: keep watching, or a later /cancel goes unseen. Said
                # once, not every second of an outage.
                if not failing:
                    log.warning("checking %s for a cancel failed: %r", self.key, exc)
                failing = True
                await asyncio.sleep(self.CANCEL_RETRY_S)
                continue
            failing = False
            if cancelled:
                self._flag.set()
                return
            await asyncio.sleep(self.CANCEL_POLL_S)

    async def __aenter__(self) -> CancelWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await stop_helper(self._task, f"cancel watch of {self.key}")
