"""Riding out a Redis that went away: which errors mean "down", backoff, and one log
line when it goes and one when it is back.

redis-py raises at once when the server is gone (no retry is configured), so each
caller decides: the worker's poll loop and the front end's event reader wait and
try again; a job's lasting records (its result, its end event) are retried until
Redis answers; a user's request is refused with "the queue is unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import redis.exceptions

from stylebot.bot.core.errors import QueueUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What Redis being down (killed, restarting, loading its AOF, unreachable) raises.
#: BusyLoadingError is a ConnectionError: a restarted server answers it while it
#: reads its append-only file back.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # Raw socket errors that reach us unwrapped (a reset mid-reply).
    ConnectionError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


#: How long a front end's queue call may take before the queue counts as unavailable.
#: Bounded: enqueueing runs inside the job's SQLite transaction, and Redis sets no
#: reply timeout, so a server that stopped answering (not closed) would hold it for ever.
QUEUE_CALL_TIMEOUT_S = 10.0
#: How long a stopping worker's last Redis calls (its health and presence keys, an
#: interrupted job's try) wait for a reply: a frozen or cut-off Redis sends no error,
#: and a SIGTERM must still be obeyed. An unanswered call is given up as an outage.
STOPPING_REPLY_WAIT_S = 5.0


@contextlib.asynccontextmanager
async def as_queue_unavailable(timeout_s: float | None = None) -> AsyncIterator[None]:
    """An outage (or no answer in `timeout_s`, default QUEUE_CALL_TIMEOUT_S) becomes the
    core's QueueUnavailable: the core knows no Redis."""
    try:
        async with asyncio.timeout(timeout_s or QUEUE_CALL_TIMEOUT_S):
            yield
    except OUTAGE_ERRORS as exc:
        raise QueueUnavailable(f"Redis is unavailable: {exc!r}") from exc


class Backoff:
    """Waits that double from `first_s` up to `cap_s`, back to `first_s` on `reset`."""

    def __init__(self, first_s: float = 0.25, cap_s: float = 5.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next_s = first_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self.cap_s, self._next_s * 2)
        return delay

    def reset(self) -> None:
        self._next_s = self.first_s


class OutageWatch:
    """One process's view of whether its Redis is up: logs the change, not every try."""

    def __init__(self, who: str, backoff: Backoff | None = None) -> None:
        self.who = who
        self.backoff = backoff or Backoff()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed try; the seconds to wait before the next one."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis is unavailable (%r); %s retries with backoff", exc, self.who)
        return self.backoff.next_delay()

    def succeeded(self) -> bool:
        """Record a successful try; True when it ends an outage."""
        if self._down_since is None:
            return False
        down_s = time.monotonic() - self._down_since
        log.warning("Redis is back after %.1f s; %s carries on", down_s, self.who)
        self._down_since = None
        self.backoff.reset()
        return True


async def until_redis_answers(
    operation: Callable[[], Awaitable[T]],
    what: str,
    *,
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """`operation()`, tried again with backoff for as long as Redis is down.

    For records that must not be lost (a job's result, its end event). Cancelling
    the caller ends the wait; so does `give_up()` turning true (a worker shutting
    down), after which the outage error is raised.
    """
    watch = OutageWatch(what)
    while True:
        try:
            result = await operation()
        except OUTAGE_ERRORS as exc:
            if give_up():
                raise
            await asyncio.sleep(watch.failed(exc))
            continue
        watch.succeeded()
        return result
