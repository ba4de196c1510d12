"""The front end's side of the queue: the JobQueue port on arq."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from arq.connections import ArqRedis

from stylebot.queue.connection import MAX_PENDING_WAKES, QUEUED_JOB_TTL_S
from stylebot.queue.disk_rewrites import MIN_REWRITE_INTERVAL_S, DiskRewrites
from stylebot.queue.events import EventPublisher
from stylebot.queue.fairness import Lane, in_turn_order, lane_of
from stylebot.queue.forgetting import forget_jobs, forget_owner, revoke_blobs
from stylebot.queue.keys import WAKE_KEY, cancel_key
from stylebot.queue.outage import OUTAGE_ERRORS, as_queue_unavailable
from stylebot.queue.payloads import (
    CaptionJob,
    CompareJob,
    GenerateJob,
    JobEvent,
    JobKind,
    TrainJob,
)
from stylebot.queue.traces import untraced_jobs
from stylebot.queue.turns import drop_turn, enqueue_with_turn, lane_turns
from stylebot.queue.worker_presence import job_worker_alive
from stylebot.storage.blob_storage import BlobStorage

log = logging.getLogger(__name__)


class QueueError(RuntimeError):
    pass


class ArqJobQueue:
    """Raises QueueUnavailable (the core's) while Redis is down: nothing was done."""

    def __init__(
        self,
        redis: ArqRedis,
        blobs: BlobStorage | None = None,
        *,
        min_rewrite_interval_s: float = MIN_REWRITE_INTERVAL_S,
    ) -> None:
        self.redis = redis
        # Where forgotten jobs' training checkpoints are deleted (None: left to workers).
        self.blobs = blobs
        self.disk_rewrites = DiskRewrites(redis, min_rewrite_interval_s)

    async def enqueue_train(self, job: TrainJob) -> None:
        await self._enqueue("train", job.job_id, job.owner, job.to_dict())

    async def enqueue_generate(self, job: GenerateJob) -> None:
        await self._enqueue("generate", job.job_id, job.owner, job.to_dict())

    async def enqueue_caption(self, job: CaptionJob) -> None:
        # The generation lane (fairness.lane_of): short device work, in turns with images.
        await self._enqueue("caption", job.job_id, job.owner, job.to_dict())

    async def enqueue_compare(self, job: CompareJob) -> None:
        await self._enqueue("compare", job.job_id, job.owner, job.to_dict())

    async def cancel(self, job_id: str) -> None:
        async with as_queue_unavailable():
            # Workers look for this key before a job starts and between steps; kept
            # at least as long as a queued job may wait, so no cancel is forgotten.
            await self.redis.set(cancel_key(job_id), b"1", ex=QUEUED_JOB_TTL_S)
            # It leaves the order now; a worker that still finds it drops it first thing.
            await drop_turn(self.redis, job_id)

    async def waiting_order(self, kind: JobKind) -> list[str]:
        """Jobs of a lane with a turn (queued, or running), in the order workers start them."""
        async with as_queue_unavailable():
            turns = await lane_turns(self.redis, lane_of(kind))
        return in_turn_order(list(turns), turns)

    async def forget_jobs(self, job_ids: Sequence[str], owner: str | None = None) -> None:
        """See `stylebot.queue.forgetting.forget_jobs`; `owner`'s fair-order entry too."""
        async with as_queue_unavailable():
            checkpoints = await forget_jobs(self.redis, job_ids)
        if self.blobs is not None:
            for key in checkpoints:
                await self.blobs.delete(key)
        if owner is not None:
            async with as_queue_unavailable():
                await forget_owner(self.redis, owner)

    async def revoke_blobs(self, keys: Sequence[str]) -> None:
        async with as_queue_unavailable():
            await revoke_blobs(self.redis, keys)

    async def erase_from_disk(self) -> None:
        """Redis rewrites its files (`stylebot.queue.disk_rewrites`): now, or once the
        last rewrite is `min_rewrite_interval_s` old. Unreachable, QueueUnavailable: the
        erasure's recorded clean-up keeps the rewrite owed and asks again later."""
        async with as_queue_unavailable():
            await self.redis.ping()
        await self.disk_rewrites.request()

    async def close(self) -> None:
        """Before the connection closes: a rewrite still waiting runs now."""
        await self.disk_rewrites.close()

    async def untraced(self, job_ids: Sequence[str]) -> set[str]:
        # Longer: it may read a backlog of events from the stream.
        async with as_queue_unavailable(timeout_s=60):
            return await untraced_jobs(self.redis, job_ids)

    async def report_failed(self, job_id: str, kind: JobKind, error: str) -> None:
        async with as_queue_unavailable():
            await EventPublisher(self.redis).add(JobEvent(job_id, kind, "failed", error=error))

    async def worker_alive(self, job_id: str) -> bool:
        async with as_queue_unavailable():
            return await job_worker_alive(self.redis, job_id)

    async def _enqueue(
        self, function: str, job_id: str, owner: str | None, payload: dict[str, object]
    ) -> None:
        lane: Lane = lane_of(function)
        # The job id doubles as arq's id, so enqueueing the same job twice is a
        # no-op. The job enters arq's queue together with its fair turn.
        async with as_queue_unavailable():
            turn = await enqueue_with_turn(self.redis, function, lane, job_id, owner, payload)
        if turn is None:
            raise QueueError(f"job {job_id} is already queued")
        # Queued: a lost wake only means a worker finds the job at its next poll.
        with contextlib.suppress(*OUTAGE_ERRORS):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lpush(WAKE_KEY, b"1")
                pipe.ltrim(WAKE_KEY, 0, MAX_PENDING_WAKES - 1)
                await pipe.execute()
