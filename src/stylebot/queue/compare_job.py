"""The compare job: a worker finds near-duplicates among a member's waiting images by
CLIP image embedding (the perceptual hash the front end compares misses a re-crop or a
close re-drawing). Queued when images arrive and `clip_model` is set; a short job of
the generation lane. Keys in, pairs of keys out, through Redis and the blob store."""

from __future__ import annotations

import time
from typing import Any

from stylebot.queue.damaged_inputs import read_training_images
from stylebot.queue.job_lifecycle import (
    CancelWatch,
    Interruption,
    report_cancelled,
    report_finished,
    run_job,
)
from stylebot.queue.payloads import CompareJob, CompareResult, JobEvent
from stylebot.queue.worker_context import WorkerContext


async def compare(context: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job = CompareJob.from_dict(payload)
    return await run_job(context, job.job_id, "compare", (), lambda i: _compare(context, job, i))


async def _compare(
    context: WorkerContext, job: CompareJob, interruption: Interruption
) -> dict[str, Any]:
    events = context.events
    started = time.perf_counter()
    if await CancelWatch(context.redis, job.job_id).already_cancelled():
        return await report_cancelled(context, job.job_id, "compare")
    await events.publish(JobEvent(job.job_id, "compare", "started"))
    images = await read_training_images(context.blobs, job.image_keys)
    engine = context.engine
    found = await context.device.run(lambda: engine.similar_images(images, job.first_new))
    interruption.now_recording()
    keys = job.image_keys
    result = CompareResult(
        tuple((keys[i], keys[j], cosine) for i, j, cosine in found),
        time.perf_counter() - started,
        clip_model=engine.measurer.clip_model,
    )
    return await report_finished(
        context, JobEvent(job.job_id, "compare", "finished", result=result.to_dict())
    )
