"""Queue-side work owed by an erasure or a style deletion, carried out durably.

Erasure and style deletion delete their records in SQLite first. What the queue
(Redis) holds of them — payloads with prompts, results, events, workers' cached
weights, the append-only file — is cleaned up after the commit. The work is
recorded (`PendingQueueCleanups`) in the same transaction as the deletion, so an
unreachable queue, or a front end that stops, never leaves it undone and never
aborts the deletion: the carrier runs it after the commit, again at start, and
after a failure on a backoff until the queue answers, deleting each record once
its work is done. Every step is safe to repeat.

A late event of an erased job (a worker had not seen the cancel yet) also records
its job to forget, with a rewrite of the queue's files; those rewrites are
debounced, so a burst of late events forks one BGREWRITEAOF, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stylebot.bot.core.deps import Deps

log = logging.getLogger(__name__)

# Late events come in bursts (a batch's results, a training's previews): one rewrite
# of the queue's files after the burst is enough.
LATE_EVENT_REWRITE_DELAY_S = 2.0
# Retries while the queue is unreachable: doubling from the first, up to the last.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class QueueCleanup:
    """Ids only: it is stored, so it must hold nothing a user wrote."""

    cancel_job_ids: tuple[str, ...] = ()
    forget_job_ids: tuple[str, ...] = ()
    owner: str | None = None  # the owner whose fair-order entry goes (job_owner)
    revoke_blob_keys: tuple[str, ...] = ()
    rewrite_files: bool = False  # the queue's store rewrites its files afterwards

    @property
    def is_empty(self) -> bool:
        return not (
            self.cancel_job_ids
            or self.forget_job_ids
            or self.owner
            or self.revoke_blob_keys
            or self.rewrite_files
        )


class QueueCleanupCarrier:
    """Carries out the recorded clean-ups (`UnitOfWork.cleanups`), one run at a time,
    and retries them."""

    def __init__(self, late_rewrite_delay_s: float = LATE_EVENT_REWRITE_DELAY_S) -> None:
        self.late_rewrite_delay_s = late_rewrite_delay_s
        self._running = asyncio.Lock()
        self._scheduled: asyncio.Task[None] | None = None
        self._retry_s = RETRY_FIRST_S

    async def record(self, deps: Deps, cleanup: QueueCleanup) -> None:
        """Inside the caller's transaction, so it commits with the deletion."""
        if cleanup.is_empty:
            return
        await deps.uow.cleanups.add(cleanup, deps.clock.now())

    async def carry_out(self, deps: Deps) -> bool:
        """Do what is recorded; True when nothing is left. A queue failure is logged,
        leaves the rest recorded and schedules a retry; it is never raised."""
        async with self._running:
            try:
                await self._carry_out(deps)
            except Exception as exc:
                log.warning("queue clean-up after an erasure is waiting for the queue: %r", exc)
                self._schedule(deps, self._retry_s)
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
                return False
        self._retry_s = RETRY_FIRST_S
        return True

    async def _carry_out(self, deps: Deps) -> None:
        pending = await deps.uow.cleanups.pending()
        if not pending:
            return
        waiting_for_rewrite: list[int] = []
        for cleanup_id, cleanup in pending:
            for job_id in cleanup.cancel_job_ids:
                await deps.queue.cancel(job_id)
            if cleanup.forget_job_ids or cleanup.owner:
                await deps.queue.forget_jobs(cleanup.forget_job_ids, owner=cleanup.owner)
            if cleanup.revoke_blob_keys:
                await deps.queue.revoke_blobs(cleanup.revoke_blob_keys)
            if cleanup.rewrite_files:
                waiting_for_rewrite.append(cleanup_id)
            else:
                await deps.uow.cleanups.done([cleanup_id])
        if waiting_for_rewrite:
            # One rewrite for all of them, after every deletion it is to drop.
            await deps.queue.erase_from_disk()
            await deps.uow.cleanups.done(waiting_for_rewrite)
        # The records named the erased user's queue key: out of the database's log too.
        await deps.uow.wipe_deleted()

    def carry_out_later(self, deps: Deps) -> None:
        """Debounced: requests within `late_rewrite_delay_s` of a scheduled run join it."""
        self._schedule(deps, self.late_rewrite_delay_s)

    def _schedule(self, deps: Deps, delay_s: float) -> None:
        if self._scheduled is not None and not self._scheduled.done():
            return
        self._scheduled = asyncio.create_task(self._after(deps, delay_s), name="queue-cleanup")

    async def _after(self, deps: Deps, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._scheduled = None  # a failure in this run schedules the next one
        await self.carry_out(deps)

    async def stop(self) -> None:
        """Cancel a scheduled run (the front end is stopping; the records stay)."""
        scheduled, self._scheduled = self._scheduled, None
        if scheduled is not None:
            scheduled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduled
