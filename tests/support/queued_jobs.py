"""The training jobs a front end queued, read back from Redis as the worker would get them."""

from __future__ import annotations

from arq.jobs import Job

from stylebot.bootstrap import FrontEnd
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import QUEUE_NAME
from stylebot.queue.payloads import TrainJob


async def queued_train_jobs(frontend: FrontEnd) -> list[TrainJob]:
    """Every training job waiting in the queue now (no worker has taken it)."""
    found: list[TrainJob] = []
    for job in await frontend.uow.jobs.active_jobs():
        if job.kind != "train":
            continue
        arq_job = Job(
            job.id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
        )
        info = await arq_job.info()
        assert info is not None, f"training job {job.id} is not in the queue"
        found.append(TrainJob.from_dict(info.args[0]))
    return found
