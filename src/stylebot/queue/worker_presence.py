"""Whether a running job's worker is alive: a short-lived presence key per worker.

A job's lease (`stylebot.queue.recovery.JobLease`) outlives a SIGKILLed worker by
up to one lease, and during that time the records still say the job is running.
Each worker therefore keeps a presence key alive for a few seconds at a time (its
value announces the worker, `stylebot.queue.worker_announcement`) and
writes its id into the lease it holds; the front end reads the lease's worker id
and asks whether that worker's presence key is still there (`job_worker_alive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.bot.core.admin_ports import LiveWorker
from stylebot.queue.keys import arq_in_progress_key, presence_key
from stylebot.queue.outage import OUTAGE_ERRORS, STOPPING_REPLY_WAIT_S, OutageWatch
from stylebot.queue.worker_announcement import announcement_json

log = logging.getLogger(__name__)

# Redis gone, or refusing the write (MISCONF: its disk is full).
_OUTAGE_OR_REFUSED: tuple[type[BaseException], ...] = (*OUTAGE_ERRORS, ResponseError)

#: How long a worker counts as alive after its last renewal.
PRESENCE_TTL_S = 10.0
#: How often a worker renews its presence: several times a TTL, so a blip costs nothing.
PRESENCE_RENEW_S = 2.5


def this_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerPresence:
    """Renews this worker's presence key from the event loop until `stop`.

    Rides out a Redis outage like the rest of the worker: the renewal is tried
    again with backoff, and the key is back as soon as Redis is.
    """

    def __init__(
        self,
        redis: Redis,
        worker_id: str,
        announcement: Callable[[], LiveWorker] | None = None,
    ) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.key = presence_key(worker_id)
        # The key's value: what this worker is and does (`worker_announcement`).
        self.announcement = announcement
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(*OUTAGE_ERRORS, ResponseError):
            await self._renew_once()
        self._task = asyncio.create_task(self._renew())

    async def _renew_once(self) -> None:
        value = b"1" if self.announcement is None else announcement_json(self.announcement())
        await self.redis.set(self.key, value, px=int(PRESENCE_TTL_S * 1000))

    async def announce_now(self) -> None:
        """Renew at once, not at the next beat: the worker started draining."""
        try:
            async with asyncio.timeout(STOPPING_REPLY_WAIT_S):
                await self._renew_once()
        except _OUTAGE_OR_REFUSED as exc:
            log.warning("worker %s could not announce its change: %r", self.worker_id, exc)

    async def _renew(self) -> None:
        watch = OutageWatch(f"presence of worker {self.worker_id}")
        while True:
            try:
                await self._renew_once()
            except OUTAGE_ERRORS as exc:
                await asyncio.sleep(min(PRESENCE_RENEW_S, watch.failed(exc)))
                continue
            except ResponseError as exc:
                # Refused (an ACL, a full disk): the worker goes on; /status may call it
                # stopped until Redis takes the key again.
                log.warning("presence of worker %s not renewed: %r", self.worker_id, exc)
                await asyncio.sleep(PRESENCE_RENEW_S)
                continue
            watch.succeeded()
            await asyncio.sleep(PRESENCE_RENEW_S)

    async def stop(self) -> None:
        """A clean shutdown: the worker is gone at once, not a TTL later."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(STOPPING_REPLY_WAIT_S):
                await self.redis.delete(self.key)
        except _OUTAGE_OR_REFUSED as exc:
            log.warning("could not remove the presence key of worker %s: %r", self.worker_id, exc)


async def job_worker_alive(redis: Redis, job_id: str) -> bool:
    """Whether the job's lease is held by a worker that is still alive.

    No lease: the job waits for a worker again. A lease with no worker id (taken
    by a worker older than presence keys): its holder is taken to be alive.
    """
    holder = await redis.get(arq_in_progress_key(job_id))
    if holder is None:
        return False
    worker_id = lease_holder(holder)
    if worker_id is None:
        return True
    return bool(await redis.exists(presence_key(worker_id)))


def lease_holder(lease_value: bytes) -> str | None:
    """The worker id a lease names; None for arq's own b"1" (no id written yet)."""
    return None if lease_value == b"1" else lease_value.decode()
