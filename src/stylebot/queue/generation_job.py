"""The body of a generation job, and batching: compatible jobs share a pipeline call."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stylebot.config import Settings
from stylebot.engine.lora_files import LoraMismatchError
from stylebot.engine.runtime import JobCancelled, generation_batch_key
from stylebot.log_privacy import private_texts
from stylebot.queue.cancel_watch import CancelWatch
from stylebot.queue.damaged_inputs import read_style_weights
from stylebot.queue.job_lifecycle import Interruption, run_job
from stylebot.queue.payloads import GeneratedImage, GenerateJob, GenerateResult, JobEvent
from stylebot.queue.progress import ProgressReporter
from stylebot.queue.worker_context import WorkerContext

if TYPE_CHECKING:
    from stylebot.engine.runtime import StyleEngine

log = logging.getLogger(__name__)


async def generate(context: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job = GenerateJob.from_dict(payload)
    with private_texts(job.prompt, job.negative_prompt, job.style_name, job.trigger):
        return await run_job(
            context,
            job.job_id,
            "generate",
            context.settings.generate_timeout_s,
            lambda interruption: _generate(context, job, interruption),
        )


async def _generate(
    context: WorkerContext, job: GenerateJob, interruption: Interruption
) -> dict[str, Any]:
    events = context.events
    watch = CancelWatch(context.redis, job.job_id)
    started = time.perf_counter()
    try:
        if await watch.already_cancelled():
            await events.publish(JobEvent(job.job_id, "generate", "cancelled"))
            return {"cancelled": True}
        await events.publish(JobEvent(job.job_id, "generate", "started", total=job.steps))
        lora = (
            await read_style_weights(context.blobs, job.lora_key, job.style_id, job.style_name)
            if job.lora_key
            else None
        )
        report = ProgressReporter(events, asyncio.get_running_loop(), job.job_id, "generate")
        async with watch:
            engine = context.engine
            if job.embedding_key:  # the engine loads it by key, from its own disk
                embedding = await read_style_weights(
                    context.blobs, job.embedding_key, job.style_id, job.style_name
                )
                engine.store_embedding(job.embedding_key, embedding)
            images = await context.device.run_batched(
                lambda batch: _generate_together(engine, batch),
                _Generation(job, lora, report, watch, interruption),
                batch_key=generation_batch_key(
                    job, mixed_styles=mixed_style_batches(context.settings, engine)
                ),
                max_batch=max_batch_size(context.settings),
            )
        if isinstance(images, LoraMismatchError):  # its style failed; others in the batch went on
            raise images
        if watch.is_set():  # cancelled while it shared a batch with jobs that went on
            raise JobCancelled(f"job {job.job_id} was cancelled")
        stored = [
            GeneratedImage(image.output_id, await context.blobs.put(image.png), image.seed)
            for image in images
        ]
    except JobCancelled:
        await events.publish(JobEvent(job.job_id, "generate", "cancelled"))
        return {"cancelled": True}
    result = GenerateResult(tuple(stored), time.perf_counter() - started)
    await events.publish(JobEvent(job.job_id, "generate", "finished", result=result.to_dict()))
    return result.to_dict()


@dataclass(frozen=True)
class _Generation:
    """One generation job's share of a batch."""

    job: GenerateJob
    lora: bytes | None
    report: ProgressReporter
    watch: CancelWatch
    interruption: Interruption

    def should_stop(self) -> bool:
        return self.watch.is_set() or self.interruption.is_set()


def _generate_together(engine: StyleEngine, batch: list[_Generation]) -> list[Any]:
    """Run on the device thread: one pipeline call for jobs that share a batch key."""

    def on_step(done: int, total: int) -> None:
        for item in batch:
            item.report(done, total)

    def should_stop() -> bool:
        # A batch stops only when every job in it was cancelled or
        # interrupted (the worker's shutdown interrupts them all); a job
        # cancelled alone is dropped when the batch is done.
        return all(item.should_stop() for item in batch)

    jobs = [item.job for item in batch]
    styles: dict[tuple[object, ...], list[int]] = {}
    for index, job in enumerate(jobs):
        styles.setdefault((job.lora_key, job.trigger, job.style_id), []).append(index)
    if len(styles) == 1:
        result: list[Any] = engine.generate_batch(jobs, batch[0].lora, on_step, should_stop)
        return result
    # Only with mixed_style_batches: one call through per-sample adapters.
    try:
        mixed: list[Any] = engine.generate_mixed(
            jobs, [item.lora for item in batch], on_step, should_stop
        )
        return mixed
    except LoraMismatchError:
        log.info("a style in a mixed batch does not fit the model; generating style by style")
    # One style's LoRA does not fit: its jobs get the error, the others their images.
    per_job: list[Any] = [None] * len(batch)
    for indices in styles.values():
        try:
            made = engine.generate_batch(
                [jobs[i] for i in indices], batch[indices[0]].lora, on_step, should_stop
            )
        except LoraMismatchError as exc:
            made = [exc] * len(indices)
        for index, images in zip(indices, made, strict=True):
            per_job[index] = images
    return per_job


def mixed_style_batches(settings: Settings, engine: StyleEngine) -> bool:
    """Whether jobs in different styles may share a pipeline call: "auto" on CUDA
    only, where a bigger batch is nearly free; on the CPU it saves nothing."""
    if settings.mixed_style_batches == "auto":
        return bool(engine.device_type == "cuda")
    return settings.mixed_style_batches == "on"


def max_batch_size(settings: Settings) -> int:
    """How many compatible generation requests share one pipeline call, at most."""
    return max(1, settings.max_batch_size)
