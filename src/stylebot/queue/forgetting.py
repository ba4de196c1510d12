"""What an erasure reaches beyond SQLite and the blob store: Redis, and the workers' caches.

Forgetting jobs (`forget_jobs`): arq's job record (the payload: prompt, style name,
trigger) and its result, its retry counter, the job's fair turn, its kept finished
event, a training's checkpoint, and the job's entries in the events stream (progress previews carry
the trigger), found by the stream's per-job index (`stylebot.queue.events`). arq's
results never hold a job's arguments in the first place (`result_without_arguments`),
since a cancelled job's result is written by its worker after the erasure that
cancelled it.

Revoking blobs (`revoke_blobs`): a worker keeps copies of style weights on its own
disk (`stylebot.engine.worker_cache`). A revocation is a record in Redis, a sorted
set of blob keys by when they were revoked, that every worker applies at start and
polls while it runs (`stylebot.queue.cache_revocation`), so a worker that is offline
now drops its copy when it starts. The record is kept `REVOCATION_KEEP_S`; a worker
drops at start every cached file unused for longer, so none outlives its revocation.

Rewriting the append-only file (`rewrite_append_only_file`): deleted keys stay in
Redis's AOF until it is rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.queue.connection import QUEUED_JOB_TTL_S, serialize_job
from stylebot.queue.events import (
    FRONTEND_GROUP,
    delivery_state_keys,
)
from stylebot.queue.fairness import LANES
from stylebot.queue.keys import (
    ARQ_ABORTED_JOBS_KEY,
    EVENTS_STREAM,
    QUEUE_NAME,
    REVOKED_BLOBS_KEY,
    arq_job_key,
    arq_result_key,
    arq_retry_key,
    checkpoint_key,
    job_end_key,
    job_events_key,
    owner_rounds_key,
    turns_key,
)
from stylebot.redis_replies import awaited, list_reply

log = logging.getLogger(__name__)

# As long as a job may wait in the queue: a worker's cache entry unused for longer is
# dropped at start without looking (see the module doc).
REVOCATION_KEEP_S = QUEUED_JOB_TTL_S
# Stream entries deleted per command.
_STREAM_PAGE = 1000
# How long a rewrite waits for one already running (which started before the deletes).
_REWRITE_WAIT_S = 60.0


def result_without_arguments(result_data: bytes | None) -> bytes | None:
    """arq's result record minus the job's arguments (its payload: prompt, style...).

    Results are for whoever waits on a job (tests, tools); the payload is the front
    end's, which keeps it in SQLite as long as it may. None (no result kept) if the
    record is not ours to read.
    """
    if result_data is None:
        return None
    try:
        record = json.loads(result_data)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    record["a"], record["k"] = [], {}
    return serialize_job(record)


async def forget_jobs(redis: Redis, job_ids: Sequence[str]) -> list[str]:
    """Delete everything Redis holds of these jobs; returns the blob keys of their
    training checkpoints (the caller deletes those blobs). Safe to repeat. Works through
    `_STREAM_PAGE` jobs at a time, so no single command grows with a user's history."""
    ids = sorted(set(job_ids))
    checkpoint_blobs: list[str] = []
    for first in range(0, len(ids), _STREAM_PAGE):
        checkpoint_blobs += await _forget_job_records(redis, ids[first : first + _STREAM_PAGE])
    await _delete_events(redis, set(ids))
    return checkpoint_blobs


async def _forget_job_records(redis: Redis, ids: list[str]) -> list[str]:
    # The checkpoints are read in the transaction that deletes them: one a worker
    # records in between would be deleted unread, its blob (trained on what is being
    # erased) left for ever. After it, arq's job is gone and no worker records one.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.mget([checkpoint_key(job_id) for job_id in ids])
        for job_id in ids:
            pipe.delete(
                arq_job_key(job_id),
                arq_result_key(job_id),
                arq_retry_key(job_id),
                checkpoint_key(job_id),
                job_end_key(job_id),
            )
        pipe.zrem(QUEUE_NAME, *ids)
        pipe.zrem(ARQ_ABORTED_JOBS_KEY, *ids)
        for lane in LANES:
            pipe.hdel(turns_key(lane), *ids)
        checkpoints, *_deleted = await pipe.execute()
    return [json.loads(raw)["blob_key"] for raw in checkpoints if raw is not None]


async def forget_owner(redis: Redis, owner: str) -> None:
    """The owner's place in the fair order (their next round) names them: drop it."""
    async with redis.pipeline(transaction=True) as pipe:
        for lane in LANES:
            pipe.hdel(owner_rounds_key(lane), owner)
        await pipe.execute()


async def _delete_events(redis: Redis, job_ids: set[str]) -> int:
    """XDEL the stream entries of these jobs, found by their index (never by reading the
    stream: its length is anyone's to grow). At most `_STREAM_PAGE` ids per command."""
    deleted = 0
    for job_id in sorted(job_ids):
        index = job_events_key(job_id)
        while True:
            # Removed from the index only once deleted: a failure here is retried whole.
            members = await awaited(redis.srandmember(index, _STREAM_PAGE))
            page = [_text(id_) for id_ in list_reply(members)]
            if not page:
                break
            # Acknowledged too, or the front end's pending list would name them for ever.
            with contextlib.suppress(ResponseError):  # no group yet: nothing pending
                await redis.xack(EVENTS_STREAM, FRONTEND_GROUP, *page)
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xdel(EVENTS_STREAM, *page)
                pipe.delete(*(key for mid in page for key in delivery_state_keys(mid)))
                pipe.srem(index, *page)
                await pipe.execute()
            deleted += len(page)
    return deleted


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The time, the record and the clean-up in one step on Redis's clock: revocations from
# several front ends get scores in the order they land, so a poll that saw one has seen
# every earlier one. (replicate_commands: a Redis before 5 needs it to write after TIME.)
_REVOKE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - ARGV[1]))
return now
"""


async def revoke_blobs(redis: Redis, keys: Iterable[str]) -> None:
    """Record that every worker must drop its cached copies of these blobs, and forget
    revocations older than `REVOCATION_KEEP_S` (no cache entry outlives those)."""
    members = sorted(set(keys))
    if not members:
        return
    await awaited(redis.eval(_REVOKE, 1, REVOKED_BLOBS_KEY, REVOCATION_KEEP_S * 1000, *members))  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes


async def revoked_blobs_since(redis: Redis, since_ms: int) -> tuple[list[str], int]:
    """Blob keys revoked at or after `since_ms` (0: all kept), and the time to ask from
    next. Inclusive, so that one revoked in the same millisecond is not missed; a key
    seen twice is dropped twice, which does nothing."""
    rows = await redis.zrangebyscore(REVOKED_BLOBS_KEY, since_ms, "+inf", withscores=True)
    keys = [_text(member) for member, _score in rows]
    latest = max((int(score) for _member, score in rows), default=since_ms)
    return keys, latest


async def rewrite_append_only_file(redis: Redis) -> bool:
    """Ask Redis to rewrite its append-only file, so deleted keys leave the disk too.

    A rewrite that is already running snapshotted the data before our deletes: wait for
    it, then start ours. Without AOF there is nothing to rewrite. Returns whether a
    rewrite was started."""
    info = await redis.info("persistence")
    if not int(info.get("aof_enabled", 0)):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _REWRITE_WAIT_S
    while int(info.get("aof_rewrite_in_progress", 0)) or int(info.get("aof_rewrite_scheduled", 0)):
        if loop.time() > deadline:
            break  # BGREWRITEAOF then schedules ours after it
        await asyncio.sleep(0.1)
        info = await redis.info("persistence")
    await redis.bgrewriteaof()
    return True
