"""What the two kinds of job do: train a style, generate images (in batches:
compatible jobs share a pipeline call). Their lifecycle is `job_lifecycle`'s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylebot.config import Settings
from stylebot.engine.generation_request import generation_batch_key
from stylebot.engine.lora_loading import LoraMismatchError
from stylebot.engine.runtime import FinishedImage, JobCancelled, StyleEngine
from stylebot.engine.training_previews import TrainingPreviews
from stylebot.engine.worker_cache import CachedBlob
from stylebot.queue import caption_job, compare_job
from stylebot.queue.damaged_inputs import (
    fetch_source_picture,
    fetch_style_weights,
    read_training_images,
)
from stylebot.queue.job_lifecycle import (
    CancelWatch,
    Interruption,
    report_cancelled,
    report_finished,
    run_job,
)
from stylebot.queue.loop_handoff import LoopGone, loop_stopped, run_on_loop
from stylebot.queue.outage import is_outage, until_redis_answers
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateJob,
    GenerateResult,
    JobEvent,
    JobKind,
    TrainingPreview,
    TrainJob,
    TrainResult,
)
from stylebot.queue.progress import ProgressReporter
from stylebot.queue.worker_context import WorkerContext
from stylebot.storage.blob_storage import BlobStorage

log = logging.getLogger(__name__)

# Writing a checkpoint pauses training; a store slower than this is broken.
CHECKPOINT_WRITE_TIMEOUT_S = 300.0


async def train(context: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job = TrainJob.from_dict(payload)
    # Captions are the member's words too: never in a log line.
    private = (job.style_name, job.trigger, *filter(None, job.captions))
    return await run_job(context, job.job_id, "train", private, lambda i: _train(context, job, i))


async def _train(
    context: WorkerContext, job: TrainJob, interruption: Interruption
) -> dict[str, Any]:
    events = context.events
    checkpoints = context.checkpoints
    watch = CancelWatch(context.redis, job.job_id)
    loop = asyncio.get_running_loop()

    def save_checkpoint(checkpoint_file: Path, step: int) -> None:
        if interruption.final:
            return  # the job failed: nothing will resume it
        try:
            # Gives up at once if the loop stopped (the worker is exiting): waiting
            # on it would hold the device thread, and the process, for ever.
            saving = checkpoints.save_file(job.job_id, checkpoint_file, step)
            run_on_loop(saving, loop, CHECKPOINT_WRITE_TIMEOUT_S)
        except Exception as exc:
            # A lost checkpoint only means a resumed run repeats some steps:
            # no reason to fail the run itself.
            log.warning(
                "checkpoint of training job %s at step %d was not saved; training goes on (%r)",
                job.job_id,
                step,
                exc,
                exc_info=not (is_outage(exc) or isinstance(exc, LoopGone)),
            )

    # Sent from the device thread as they are rendered; all of them are out
    # before the finished event, which ends the job for the front end.
    previews_sent: list[concurrent.futures.Future[None]] = []

    def send_preview(step: int, preview: TrainingPreview, image: FinishedImage) -> None:
        if loop_stopped(loop):
            return  # the worker is exiting: nobody would send it
        sending = _send_preview(context, job, step, preview, image.png)
        previews_sent.append(asyncio.run_coroutine_threadsafe(sending, loop))

    device = context.device
    # The checkpoint a resumed run starts from: fetched to a file, never whole in memory.
    scratch = context.settings.data_dir / "cache"
    scratch.mkdir(parents=True, exist_ok=True)
    resume_file = scratch / f"resume-{secrets.token_hex(8)}.pt"
    try:
        if await watch.already_cancelled():
            await checkpoints.discard(job.job_id)
            return await report_cancelled(context, job.job_id, "train")
        saved = await checkpoints.latest_to_file(job.job_id, resume_file)
        resume_from, done_steps = (resume_file, saved) if saved is not None else (None, 0)
        if saved is not None:
            log.info("training job %s resumes after step %d", job.job_id, done_steps)
        await events.publish(
            JobEvent(job.job_id, "train", "started", step=done_steps, total=job.settings.steps)
        )
        images = await read_training_images(context.blobs, job.image_keys)
        report = ProgressReporter(events, loop, job.job_id, "train")
        async with watch:
            training = asyncio.ensure_future(
                device.run(
                    lambda: context.engine.train(
                        images,
                        job.trigger,
                        job.settings,
                        on_progress=report,
                        # Interrupted (shutdown, time limit): the device thread
                        # saves a checkpoint and stops at its next step.
                        # A stopped loop: the worker is gone, nobody waits for this run.
                        should_stop=lambda: (
                            watch.is_set() or interruption.is_set() or loop_stopped(loop)
                        ),
                        resume_from=resume_from,
                        on_checkpoint=save_checkpoint,
                        device_sharing=device,
                        export_for=job,
                        previews=TrainingPreviews(job.job_id, send_preview),
                        captions=job.captions,
                    ),
                )
            )
            # Shielded: a cancelled job still knows when the thread stops (and
            # has saved its checkpoint), see `Interruption.settled`.
            interruption.track(training)
            weights = await asyncio.shield(training)
        interruption.now_recording()
        for sent in previews_sent:
            await asyncio.wrap_future(sent)
        # No LoRA bytes: only a textual-inversion embedding trained ("" names no blob).
        lora_key = await context.blobs.put(weights.data) if weights.data else ""
        export_key = await context.blobs.put(weights.export_data) if weights.export_data else None
        embedding_key = (
            await context.blobs.put(weights.embedding_data) if weights.embedding_data else None
        )
        report_key = await context.blobs.put(weights.report_png) if weights.report_png else None
    except JobCancelled:
        await checkpoints.discard(job.job_id)
        return await report_cancelled(context, job.job_id, "train")
    finally:
        resume_file.unlink(missing_ok=True)
    result = TrainResult(
        lora_key,
        weights.steps,
        weights.final_loss,
        weights.seconds,
        weights.validation,
        export_key=export_key,
        embedding_key=embedding_key,
        report_key=report_key,
        metrics=weights.metrics,
        base=weights.base,
    )
    event = JobEvent(job.job_id, "train", "finished", step=result.steps, result=result.to_dict())
    # Recorded first: through a Redis outage, wait to record it rather than train it again.
    return await report_finished(
        context,
        event,
        after_recording=lambda: until_redis_answers(
            lambda: checkpoints.discard(job.job_id), f"dropping the checkpoint of {job.job_id}"
        ),
    )


async def _send_preview(
    context: WorkerContext, job: TrainJob, step: int, preview: TrainingPreview, png: bytes
) -> None:
    """Store a training preview (watermarked by the engine) and tell the front end."""
    try:
        stored = dataclasses.replace(preview, blob_key=await context.blobs.put(png))
        event = JobEvent(
            job.job_id, "train", "progress", step=step, total=job.settings.steps, preview=stored
        )
        await context.events.publish(event)
    except Exception:  # a preview is a courtesy: the run goes on without it
        log.exception("training preview of job %s at step %d was not sent", job.job_id, step)


async def generate(context: WorkerContext, payload: dict[str, Any]) -> dict[str, Any]:
    job = GenerateJob.from_dict(payload)
    private = (job.prompt, job.negative_prompt, job.style_name, job.trigger)
    return await run_job(
        context, job.job_id, "generate", private, lambda i: _generate(context, job, i)
    )


async def _generate(
    context: WorkerContext, job: GenerateJob, interruption: Interruption
) -> dict[str, Any]:
    events = context.events
    watch = CancelWatch(context.redis, job.job_id)
    started = time.perf_counter()
    try:
        if await watch.already_cancelled():
            return await report_cancelled(context, job.job_id, "generate")
        await events.publish(JobEvent(job.job_id, "generate", "started", total=job.steps))
        engine = context.engine
        lora = (
            await fetch_style_weights(
                context.blobs, engine.cache, "loras", job.lora_key, job.style_id, job.style_name
            )
            if job.lora_key
            else None
        )
        report = ProgressReporter(events, asyncio.get_running_loop(), job.job_id, "generate")
        async with watch:
            # The engine reads these by key, from its own disk (`_fetch_inputs`).
            inputs = await _fetch_inputs(context, job)
            with engine.cache.pinned([*inputs, *([lora] if lora else [])]):
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
        interruption.now_recording()
        keys = await store_together(context.blobs, [image.png for image in images])
        stored = [
            GeneratedImage(image.output_id, key, image.seed, image.fingerprint)
            for image, key in zip(images, keys, strict=True)
        ]
    except JobCancelled:
        return await report_cancelled(context, job.job_id, "generate")
    result = GenerateResult(tuple(stored), time.perf_counter() - started)
    event = JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    return await report_finished(context, event)


async def _fetch_inputs(context: WorkerContext, job: GenerateJob) -> list[CachedBlob]:
    """A style's embedding, a restyle's picture and a repaint's mask, on the worker's disk."""
    cache = context.engine.cache
    fetched = []
    if job.embedding_key:
        fetched.append(
            await fetch_style_weights(
                context.blobs, cache, "embeddings", job.embedding_key, job.style_id, job.style_name
            )
        )
    for key in (job.source_key, job.mask_key):
        if key:
            fetched.append(await fetch_source_picture(context.blobs, cache, key))
    return fetched


async def store_together(blobs: BlobStorage, pngs: list[bytes]) -> list[str]:
    """Store a job's images at once (each put waits on its fsyncs: together, the job
    waits for one, not one each; issue 19). The first failure is raised once every put
    is over, as storing them one by one would."""
    keys = await asyncio.gather(*(blobs.put(png) for png in pngs), return_exceptions=True)
    for key in keys:
        if isinstance(key, BaseException):
            raise key
    return [key for key in keys if isinstance(key, str)]


@dataclass(frozen=True)
class _Generation:
    """One generation job's share of a batch."""

    job: GenerateJob
    lora: CachedBlob | None
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
        made: list[Any]
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


JobBody = Callable[[WorkerContext, dict[str, Any]], Awaitable[dict[str, Any]]]
# What a job of each kind does: the arq function of that name runs it.
JOB_BODIES: dict[JobKind, JobBody] = {
    "train": train,
    "generate": generate,
    "caption": caption_job.caption,
    "compare": compare_job.compare,
}
