"""Jobs the database holds as queued or running but the queue has lost are failed.

That happens when Redis loses its last writes (`appendfsync everysec` may lose
about a second of them when it is killed), when it comes back empty, or with a
database from before enqueueing joined the job's transaction (its rows were
committed, then the enqueue failed). Such a job would never run and would hold
one of its owner's queue slots for ever.

Failed, not queued again: the request was checked when it was made (consent,
quotas, the style's state, the blocklist), and sending it again later, after
its owner may have given up on it, would run what nobody is waiting for. Its
owner is told it was lost and can send it again; a queued job still counts
against the daily quota it was admitted under.

The failure goes out as a worker's "failed" event would (`JobQueue.report_failed`),
so it is recorded and told to the owner by the usual event handling, after any
event of the job that is still on its way.
"""

from __future__ import annotations

import logging

from stylebot.bot.core.deps import Deps

log = logging.getLogger(__name__)

LOST_ERROR = "it was lost while the queue was unavailable, and never ran"


async def reconcile_with_queue(deps: Deps) -> list[str]:
    """Fail the active jobs the queue has no trace of; their ids."""
    # Under the admission lock: a request being admitted has its job row written
    # before it is enqueued (in one transaction), and must not be taken for lost.
    async with deps.admission:
        active = await deps.uow.jobs.active_jobs()
        if not active:
            return []
        untraced = await deps.queue.untraced([job.id for job in active])
        lost = [job for job in active if job.id in untraced]
        for job in lost:
            log.warning("%s job %s is not in the queue: reported failed", job.kind, job.id)
            await deps.queue.report_failed(job.id, job.kind, LOST_ERROR)
    return [job.id for job in lost]
