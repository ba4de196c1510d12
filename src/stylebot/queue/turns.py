"""Each queued job's fair turn, kept in Redis (the rule: `stylebot.queue.fairness`).

Per lane: a hash job id -> "round:arrival" (the order), a hash owner -> the
owner's next round, and the lane's current round (highest round started).
One arrival counter and one version for both lanes.

Exact positions need two things atomic:
- a job enters arq's queue in the same script that gives it its turn
  (`enqueue_with_turn`), so a worker never sees a job without its turn, and
  every new job moves the version;
- a worker starts a job only if the version is the one it read the queue at
  (`claim`), and moves the current round in the same script. So a job queued
  while a worker decides makes it read the queue again, and a job queued
  after a start gets a turn behind the started one: no worker starts a job
  ahead of one that /status says comes first.
A finished or cancelled job leaves the order; a job retried after its lease
lapsed keeps its turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis
from arq.jobs import serialize_job as arq_job_bytes
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from stylebot.queue.connection import QUEUED_JOB_TTL_S, serialize_job
from stylebot.queue.fairness import LANES, Lane, Turn
from stylebot.queue.keys import (
    QUEUE_NAME,
    TURN_ARRIVALS_KEY,
    TURNS_VERSION_KEY,
    arq_job_key,
    arq_result_key,
    current_round_key,
    owner_rounds_key,
    turns_key,
)
from stylebot.redis_replies import awaited

# arq's enqueue (job key unless it or a result exists, then the queue entry)
# with the turn, in one script. Returns the turn; nil when the job exists.
_ENQUEUE_WITH_TURN = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return false end
local turn = redis.call('HGET', KEYS[4], ARGV[1])
if not turn then
  local current = tonumber(redis.call('GET', KEYS[6]) or '0')
  local round = current
  -- A job without an owner takes the current round and books nothing: keeping an
  -- owner entry per such job would grow the hash by one for every job.
  if ARGV[2] ~= '' then
    local owner_next = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')
    round = math.max(owner_next, current)
    redis.call('HSET', KEYS[5], ARGV[2], string.format('%d', round + 1))
  end
  local arrival = redis.call('INCR', KEYS[7])
  turn = string.format('%d:%d', round, arrival)
  redis.call('HSET', KEYS[4], ARGV[1], turn)
end
redis.call('PSETEX', KEYS[1], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('INCR', KEYS[8])
return turn
"""

# Start a job only on an up-to-date read of the queue. The current round only
# moves forward: a retried job from an earlier round pulls nobody back.
_CLAIM = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
local turn = redis.call('HGET', KEYS[2], ARGV[2])
if turn then
  local round = tonumber(string.match(turn, '^(%d+):'))
  local current = tonumber(redis.call('GET', KEYS[3]) or '0')
  if round > current then redis.call('SET', KEYS[3], string.format('%d', round)) end
end
return 1
"""


async def enqueue_with_turn(
    redis: ArqRedis,
    function: str,
    lane: Lane,
    job_id: str,
    owner: str | None,
    payload: dict[str, Any],
) -> Turn | None:
    """Put the job on arq's queue with its turn; None if the job exists (queued, or done)."""
    enqueued_ms = timestamp_ms()
    job = arq_job_bytes(function, (payload,), {}, None, enqueued_ms, serializer=serialize_job)
    keys = [
        arq_job_key(job_id),
        arq_result_key(job_id),
        QUEUE_NAME,
        turns_key(lane),
        owner_rounds_key(lane),
        current_round_key(lane),
        TURN_ARRIVALS_KEY,
        TURNS_VERSION_KEY,
    ]
    # The job key lives as long as a job may wait (arq's default: one day).
    args = [job_id, owner or "", job, QUEUED_JOB_TTL_S * 1000, enqueued_ms]
    turn = await awaited(redis.eval(_ENQUEUE_WITH_TURN, len(keys), *keys, *args))  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
    return None if turn is None else Turn.decode(turn)


async def queue_version(redis: Redis) -> bytes:
    """Moves whenever a job is queued; read before reading the queue (see `claim`)."""
    version: bytes | None = await redis.get(TURNS_VERSION_KEY)
    return version if version is not None else b"0"


async def claim(redis: Redis, version: bytes, lane: Lane, job_id: str) -> bool:
    """May a worker that read the queue at `version` start the job? If so, its round
    becomes the lane's current round; if not, a job was queued since: read again."""
    keys = [TURNS_VERSION_KEY, turns_key(lane), current_round_key(lane)]
    claimed = await awaited(redis.eval(_CLAIM, len(keys), *keys, version, job_id))  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
    return bool(claimed)


async def drop_turn(redis: Redis, job_id: str) -> None:
    """The job finished or was cancelled: it leaves the order of its lane."""
    async with redis.pipeline(transaction=True) as pipe:
        queue_turn_drop(pipe, job_id)
        await pipe.execute()


def queue_turn_drop(pipe: Pipeline, job_id: str) -> None:
    """`drop_turn` as part of a caller's pipeline (one round trip with its other steps)."""
    for lane in LANES:
        pipe.hdel(turns_key(lane), job_id)


async def read_turns(redis: Redis, lane: Lane, job_ids: Sequence[str]) -> dict[str, Turn]:
    """The turns of these jobs in `lane`; jobs without one are left out."""
    if not job_ids:
        return {}
    raw = await awaited(redis.hmget(turns_key(lane), list(job_ids)))
    return {
        job_id: Turn.decode(text)
        for job_id, text in zip(job_ids, raw, strict=True)
        if text is not None
    }


async def lane_turns(redis: Redis, lane: Lane) -> dict[str, Turn]:
    """Every job with a turn in `lane` (queued or running)."""
    raw: dict[bytes, bytes] = await awaited(redis.hgetall(turns_key(lane)))
    return {job_id.decode(): Turn.decode(text) for job_id, text in raw.items()}
