"""The front end's side of the queue: the JobQueue port on arq."""

from __future__ import annotations

from arq.connections import ArqRedis

from stylebot.queue.connection import MAX_PENDING_WAKES, QUEUE_NAME, WAKE_KEY, cancel_key
from stylebot.queue.payloads import GenerateJob, TrainJob


class QueueError(RuntimeError):
    pass


class ArqJobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue_train(self, job: TrainJob) -> None:
        await self._enqueue("train", job.job_id, job.to_dict())

    async def enqueue_generate(self, job: GenerateJob) -> None:
        await self._enqueue("generate", job.job_id, job.to_dict())

    async def cancel(self, job_id: str) -> None:
        # Workers look for this key before a job starts and between steps.
        await self.redis.set(cancel_key(job_id), b"1", ex=7 * 24 * 3600)

    async def _enqueue(self, function: str, job_id: str, payload: dict[str, object]) -> None:
        # The job id doubles as arq's id, so enqueueing the same job twice is a no-op.
        handle = await self.redis.enqueue_job(
            function, payload, _job_id=job_id, _queue_name=QUEUE_NAME
        )
        if handle is None:
            raise QueueError(f"job {job_id} is already queued")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(WAKE_KEY, b"1")
            pipe.ltrim(WAKE_KEY, 0, MAX_PENDING_WAKES - 1)
            await pipe.execute()
