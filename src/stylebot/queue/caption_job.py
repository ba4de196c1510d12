"""The caption job: a worker proposes a caption for each of a member's waiting images.

Captioning is GPU work, so it runs on a worker through the queue like generation (it
takes turns in the generation lane, under the generation time limit, and stops at a
cancel between two batches). The images come from the blob store by key and the words
go back in the job's result and finished event: nothing crosses machines but Redis
and the blob store.
"""

from __future__ import annotations

import time
from typing import Any

from stylebot.engine.captioner import CaptioningStopped
from stylebot.queue.damaged_inputs import read_training_images
from stylebot.queue.job_lifecycle import (
    CancelWatch,
    Interruption,
    report_cancelled,
    report_finished,
    run_job,
)
from stylebot.queue.payloads import CaptionJob, CaptionResult, JobEvent
from stylebot.queue.worker_context import WorkerContext


async def caption(context: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job = CaptionJob.from_dict(payload)
    return await run_job(context, job.job_id, "caption", (), lambda i: _caption(context, job, i))


async def _caption(
    context: WorkerContext, job: CaptionJob, interruption: Interruption
) -> dict[str, Any]:
    events = context.events
    watch = CancelWatch(context.redis, job.job_id)
    started = time.perf_counter()
    if await watch.already_cancelled():
        return await report_cancelled(context, job.job_id, "caption")
    total = len(job.image_keys)
    await events.publish(JobEvent(job.job_id, "caption", "started", total=total))
    images = await read_training_images(context.blobs, job.image_keys)
    engine = context.engine
    try:
        async with watch:
            work = context.device.run(
                lambda: engine.caption(
                    images, should_stop=lambda: watch.is_set() or interruption.is_set()
                )
            )
            captions = await work
        interruption.now_recording()
    except CaptioningStopped:
        if interruption.is_set() and not watch.is_set():
            raise  # shut down or out of time: the lifecycle tells what happens next
        return await report_cancelled(context, job.job_id, "caption")
    result = CaptionResult(
        tuple(zip(job.image_keys, captions, strict=True)),
        time.perf_counter() - started,
        captioner=engine.captioner.source,
    )
    return await report_finished(
        context,
        JobEvent(
            job.job_id, "caption", "finished", step=total, total=total, result=result.to_dict()
        ),
    )
