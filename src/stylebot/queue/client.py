"""The front end's side of the queue: the JobQueue port on arq."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stylebot.queue.connection import (
    MAX_PENDING_WAKES,
    QUEUED_JOB_TTL_S,
    WAKE_KEY,
    cancel_key,
)
from stylebot.queue.fairness import Lane, in_turn_order, lane_of
from stylebot.queue.forgetting import (
    forget_jobs,
    forget_owner,
    revoke_blobs,
    rewrite_append_only_file,
)
from stylebot.queue.payloads import GenerateJob, JobKind, TrainJob
from stylebot.queue.turns import drop_turn, enqueue_with_turn, lane_turns
from stylebot.storage.blobs import LocalBlobStore

log = logging.getLogger(__name__)


class QueueError(RuntimeError):
    pass


class ArqJobQueue:
    def __init__(self, redis: ArqRedis, blobs: LocalBlobStore | None = None) -> None:
        self.redis = redis
        # Where forgotten jobs' training checkpoints are deleted (None: left to workers).
        self.blobs = blobs
        self._rewrite_failure_logged = False

    async def enqueue_train(self, job: TrainJob) -> None:
        await self._enqueue("train", job.job_id, job.owner, job.to_dict())

    async def enqueue_generate(self, job: GenerateJob) -> None:
        await self._enqueue("generate", job.job_id, job.owner, job.to_dict())

    async def cancel(self, job_id: str) -> None:
        # Workers look for this key before a job starts and between steps; kept
        # at least as long as a queued job may wait, so no cancel is forgotten.
        await self.redis.set(cancel_key(job_id), b"1", ex=QUEUED_JOB_TTL_S)
        # It leaves the order now; a worker that still finds it drops it first thing.
        await drop_turn(self.redis, job_id)

    async def waiting_order(self, kind: JobKind) -> list[str]:
        """Jobs of a lane with a turn (queued, or running), in the order workers start them."""
        turns = await lane_turns(self.redis, kind)
        return in_turn_order(list(turns), turns)

    async def forget_jobs(self, job_ids: Sequence[str], owner: str | None = None) -> None:
        """See `stylebot.queue.forgetting.forget_jobs`; `owner`'s fair-order entry too."""
        checkpoints = await forget_jobs(self.redis, job_ids)
        if self.blobs is not None:
            for key in checkpoints:
                await self.blobs.delete(key)
        if owner is not None:
            await forget_owner(self.redis, owner)

    async def revoke_blobs(self, keys: Sequence[str]) -> None:
        await revoke_blobs(self.redis, keys)

    async def erase_from_disk(self) -> None:
        """Best effort: a Redis that refuses (a managed one may) keeps the data on its
        disk until its own next rewrite; said once, not on every erasure."""
        try:
            await rewrite_append_only_file(self.redis)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise  # unreachable, not refusing: the caller retries the rewrite later
        except Exception as exc:
            if not self._rewrite_failure_logged:
                self._rewrite_failure_logged = True
                log.warning(
                    "Redis did not rewrite its append-only file after an erasure (%r): "
                    "erased jobs stay in that file until Redis next rewrites it",
                    exc,
                )

    async def _enqueue(
        self, function: str, job_id: str, owner: str | None, payload: dict[str, object]
    ) -> None:
        lane: Lane = lane_of(function)
        # The job id doubles as arq's id, so enqueueing the same job twice is a
        # no-op. The job enters arq's queue together with its fair turn.
        turn = await enqueue_with_turn(self.redis, function, lane, job_id, owner, payload)
        if turn is None:
            raise QueueError(f"job {job_id} is already queued")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(WAKE_KEY, b"1")
            pipe.ltrim(WAKE_KEY, 0, MAX_PENDING_WAKES - 1)
            await pipe.execute()
