"""What Redis still holds of a job, for start-up reconciliation (`bot.core.reconcile`).

A job is traced while any of these is there: its arq job (waiting, or running and
retried), its in-progress lease, its arq result (kept a day), its finished training
result, or an event about it that the front end has not handled yet (read from
the oldest pending one of the front end's group to the end of the stream).
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.queue.events import FRONTEND_GROUP, EventConsumer
from stylebot.queue.keys import (
    EVENTS_STREAM,
    arq_in_progress_key,
    arq_job_key,
    arq_result_key,
    job_end_key,
)

# Stream entries read per round trip while looking for unhandled events.
_READ_BATCH = 1000


async def untraced_jobs(redis: Redis, job_ids: Sequence[str]) -> set[str]:
    """The ids among `job_ids` that Redis holds nothing of (see the module doc)."""
    if not job_ids:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(
                arq_job_key(job_id),
                arq_in_progress_key(job_id),
                arq_result_key(job_id),
                job_end_key(job_id),
            )
        found = await pipe.execute()
    candidates = {job_id for job_id, count in zip(job_ids, found, strict=True) if not count}
    if candidates:
        candidates -= await _jobs_with_unhandled_events(redis)
    return candidates


async def _jobs_with_unhandled_events(redis: Redis) -> set[str]:
    """Jobs named by an event the front end's group has not acknowledged or not read."""
    start = await _oldest_unhandled(redis)
    if start is None:
        return set()
    jobs: set[str] = set()
    while True:
        entries = await redis.xrange(EVENTS_STREAM, min=start, max="+", count=_READ_BATCH)
        for _message_id, event in EventConsumer.decode_entries(entries):
            jobs.add(event.job_id)
        if len(entries) < _READ_BATCH:
            return jobs
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


async def _oldest_unhandled(redis: Redis) -> str | None:
    """The stream id to read unhandled events from; None when the stream is empty."""
    try:
        groups = await redis.xinfo_groups(EVENTS_STREAM)
    except ResponseError:  # no stream: no events at all
        return None
    group = next((g for g in groups if _text(g.get("name")) == FRONTEND_GROUP), None)
    if group is None:
        return "-"  # no front end ever read: every event is unhandled
    pending = await redis.xpending(EVENTS_STREAM, FRONTEND_GROUP)
    if pending["pending"]:
        return _text(pending["min"])
    return "(" + _text(group.get("last-delivered-id"))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
