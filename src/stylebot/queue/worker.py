"""The GPU worker: arq functions for the two job kinds, taking `ctx` like any arq job.

`ctx` holds the engine (base pipeline loaded once at start-up and kept), the
blob store, the event publisher, and the one thread that touches the device.
The worker never opens the database: it reads blobs named in the payload,
writes result blobs, and reports through events and its return value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from arq import func
from arq.worker import Worker

from stylebot.config import Settings
from stylebot.engine.runtime import JobCancelled
from stylebot.queue.connection import (
    QUEUE_NAME,
    cancel_key,
    deserialize_job,
    redis_settings,
    serialize_job,
)
from stylebot.queue.events import EventPublisher
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateJob,
    GenerateResult,
    JobEvent,
    JobKind,
    TrainJob,
    TrainResult,
)
from stylebot.storage.blobs import LocalBlobStore

log = logging.getLogger(__name__)

# Progress events are for people: a few a second is plenty, and more would
# only fill the stream while a fast (tiny-model) job runs.
PROGRESS_INTERVAL_S = 0.5


class ProgressReporter:
    """Turns calls from the device thread into throttled events on the loop."""

    def __init__(
        self, publisher: EventPublisher, loop: asyncio.AbstractEventLoop, job_id: str, kind: JobKind
    ) -> None:
        self.publisher = publisher
        self.loop = loop
        self.job_id = job_id
        self.kind = kind
        self._last = 0.0

    def __call__(self, step: int, total: int, loss: float | None = None) -> None:
        now = time.monotonic()
        if step != total and step != 1 and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        event = JobEvent(self.job_id, self.kind, "progress", step=step, total=total, loss=loss)
        asyncio.run_coroutine_threadsafe(self.publisher.publish(event), self.loop)


class CancelWatch:
    """Watches a job's cancel key from the event loop; the device thread reads `is_set`.

    Checked every CANCEL_POLL_S, well under a training step on a GPU, so a
    cancel takes effect at the next step.
    """

    CANCEL_POLL_S = 0.2

    def __init__(self, redis: Any, job_id: str) -> None:
        self.redis = redis
        self.key = cancel_key(job_id)
        self._flag = threading.Event()
        self._task: asyncio.Task[None] | None = None

    def is_set(self) -> bool:
        return self._flag.is_set()

    async def already_cancelled(self) -> bool:
        return bool(await self.redis.exists(self.key))

    async def _watch(self) -> None:
        while not self._flag.is_set():
            if await self.redis.exists(self.key):
                self._flag.set()
                return
            await asyncio.sleep(self.CANCEL_POLL_S)

    async def __aenter__(self) -> CancelWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["device_thread"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
    ctx["blobs"] = LocalBlobStore(settings.blob_dir)
    ctx["events"] = EventPublisher(ctx["redis"])
    if "engine" not in ctx:
        from stylebot.engine.runtime import StyleEngine  # torch: only workers pay for it

        loop = asyncio.get_running_loop()
        ctx["engine"] = await loop.run_in_executor(
            ctx["device_thread"],
            lambda: StyleEngine(
                settings.model,
                settings.data_dir / "cache",
                device=settings.device,
                dtype=settings.dtype,
                max_loaded_adapters=settings.max_loaded_adapters,
            ),
        )
    log.info("worker ready")


async def shutdown(ctx: dict[str, Any]) -> None:
    pool: ThreadPoolExecutor | None = ctx.get("device_thread")
    if pool is not None:
        pool.shutdown(wait=True)


async def _on_device(ctx: dict[str, Any], work: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(ctx["device_thread"], work)


async def train(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = TrainJob.from_dict(payload)
    events: EventPublisher = ctx["events"]
    watch = CancelWatch(ctx["redis"], job.job_id)
    if await watch.already_cancelled():
        await events.publish(JobEvent(job.job_id, "train", "cancelled"))
        return {"cancelled": True}
    await events.publish(JobEvent(job.job_id, "train", "started", total=job.settings.steps))
    try:
        images = [await ctx["blobs"].get(key) for key in job.image_keys]
        report = ProgressReporter(events, asyncio.get_running_loop(), job.job_id, "train")
        async with watch:
            weights = await _on_device(
                ctx,
                lambda: ctx["engine"].train(
                    images, job.trigger, job.settings, on_progress=report, should_stop=watch.is_set
                ),
            )
        lora_key = await ctx["blobs"].put(weights.data)
    except JobCancelled:
        await events.publish(JobEvent(job.job_id, "train", "cancelled"))
        return {"cancelled": True}
    except Exception as exc:
        log.exception("training job %s failed", job.job_id)
        await events.publish(JobEvent(job.job_id, "train", "failed", error=_user_error(exc)))
        raise
    result = TrainResult(lora_key, weights.steps, weights.final_loss, weights.seconds)
    await events.publish(
        JobEvent(job.job_id, "train", "finished", step=weights.steps, result=result.to_dict())
    )
    return result.to_dict()


async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = GenerateJob.from_dict(payload)
    events: EventPublisher = ctx["events"]
    watch = CancelWatch(ctx["redis"], job.job_id)
    if await watch.already_cancelled():
        await events.publish(JobEvent(job.job_id, "generate", "cancelled"))
        return {"cancelled": True}
    started = time.perf_counter()
    await events.publish(JobEvent(job.job_id, "generate", "started", total=job.steps))
    try:
        lora = await ctx["blobs"].get(job.lora_key) if job.lora_key else None
        report = ProgressReporter(events, asyncio.get_running_loop(), job.job_id, "generate")
        async with watch:
            images = await _on_device(
                ctx,
                lambda: ctx["engine"].generate(job, lora, on_step=report, should_stop=watch.is_set),
            )
        stored = [
            GeneratedImage(image.output_id, await ctx["blobs"].put(image.png), image.seed)
            for image in images
        ]
    except JobCancelled:
        await events.publish(JobEvent(job.job_id, "generate", "cancelled"))
        return {"cancelled": True}
    except Exception as exc:
        log.exception("generation job %s failed", job.job_id)
        await events.publish(JobEvent(job.job_id, "generate", "failed", error=_user_error(exc)))
        raise
    result = GenerateResult(tuple(stored), time.perf_counter() - started)
    await events.publish(JobEvent(job.job_id, "generate", "finished", result=result.to_dict()))
    return result.to_dict()


def _user_error(exc: Exception) -> str:
    """What a chat user is told: the kind of failure, not a traceback."""
    if isinstance(exc, KeyError):
        return "an input file is missing from storage"
    if isinstance(exc, MemoryError):
        return "the worker ran out of memory"
    return f"the worker hit an error ({type(exc).__name__})"


def build_worker(
    settings: Settings,
    redis_url: str,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    ctx: dict[str, Any] | None = None,
) -> Worker:
    """An arq Worker for these settings. `ctx` may carry a ready engine (tests)."""
    return Worker(
        functions=[
            func(train, name="train", timeout=timedelta(seconds=settings.train_timeout_s)),
            func(generate, name="generate", timeout=timedelta(seconds=settings.generate_timeout_s)),
        ],
        queue_name=QUEUE_NAME,
        redis_settings=redis_settings(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, **(ctx or {})},
        burst=burst,
        handle_signals=handle_signals,
        # One device, one job at a time; the queue decides the order.
        max_jobs=settings.worker_concurrency,
        poll_delay=0.05,
        # A failed job reported its failure already; retrying is for crashes.
        max_tries=3,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        keep_result=timedelta(days=1),
    )
