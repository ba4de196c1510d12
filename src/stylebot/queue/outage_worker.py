"""The worker's side of a Redis outage: keep polling with backoff, never die of it.

arq's poll loop ends the worker at the first ConnectionError; its `close` then
waits for the running jobs, which may train for hours, and fails on the next
Redis command anyway. Here an outage only pauses the polling: running jobs go
on (their progress is dropped, their checkpoints are skipped, their results
wait for Redis), the embedded Redis is started again if this process keeps it,
and polling resumes when Redis answers. SIGTERM is obeyed throughout: nothing
waits for Redis once the worker is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq.worker import Worker

from stylebot.queue.embedded_keeper import EmbeddedRedisKeeper
from stylebot.queue.outage import (
    OUTAGE_ERRORS,
    STOPPING_REPLY_WAIT_S,
    OutageWatch,
    until_redis_answers,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutageTolerantWorker(Worker):
    """An arq Worker that outlives its Redis going away (see the module doc)."""

    def __init__(
        self, *args: Any, redis_keeper: EmbeddedRedisKeeper | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # The embedded Redis this process keeps, if it does: started again after an outage.
        self._redis_keeper = redis_keeper
        # Set on SIGTERM/SIGINT: from then on nothing waits for Redis to come back.
        self.stopping = False
        self._outage = OutageWatch("the worker")

    async def poll_once(self) -> None:
        """One turn of arq's poll loop; subclasses extend this, not `_poll_iteration`."""
        await Worker._poll_iteration(self)

    async def _poll_iteration(self) -> None:
        try:
            if self._outage.down:
                await self.pool.ping()  # says "back" before a poll that may block a while
                self._outage.succeeded()
            await self.poll_once()
        except OUTAGE_ERRORS as exc:
            delay = self._outage.failed(exc)
            if self._redis_keeper is not None:
                await self._redis_keeper.revive()
            await asyncio.sleep(delay)

    async def lasting(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """A Redis write that must not be lost (a job's end): retried through an
        outage, until the worker is told to stop."""
        return await until_redis_answers(operation, what, give_up=lambda: self.stopping)

    def stop_running_jobs(self, why: str) -> None:
        """Stop the jobs running here (each at its next step); `why` is for the log.

        Not by cancelling arq's tasks: cancelled after a job returned, one puts the
        finished job back on the queue. The worker that runs the jobs knows how."""
        raise NotImplementedError

    async def close(self) -> None:
        """arq's close, except that Redis being down does not turn a clean stop into
        a crash, and a poll loop that crashed stops the running jobs (they go back on
        the queue when their lease lapses) instead of waiting hours for them."""
        main = self.main_task
        if main is not None and main.done() and not main.cancelled() and main.exception():
            log.error("the worker's poll loop crashed; stopping its jobs and exiting")
            self.stopping = True
            self.stop_running_jobs("after the crash")
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)  # as arq's close does
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with contextlib.suppress(*OUTAGE_ERRORS):  # TimeoutError among them
            async with asyncio.timeout(STOPPING_REPLY_WAIT_S):
                await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None
