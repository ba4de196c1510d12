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
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from arq import func
from arq.constants import job_key_prefix
from arq.worker import Worker

from stylebot.config import Settings
from stylebot.engine.runtime import JobCancelled, generation_batch_key
from stylebot.logs import bind_job_context
from stylebot.metrics import observed_job
from stylebot.queue.connection import (
    QUEUE_NAME,
    WAKE_KEY,
    cancel_key,
    deserialize_job,
    redis_settings,
    serialize_job,
)
from stylebot.queue.events import EventPublisher
from stylebot.queue.fairness import fair_order
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateJob,
    GenerateResult,
    JobEvent,
    JobKind,
    TrainJob,
    TrainResult,
)
from stylebot.queue.recovery import (
    CheckpointStore,
    JobLease,
    finished_training,
    mark_training_reported,
    remember_finished_training,
)
from stylebot.queue.scheduler import DeviceScheduler
from stylebot.queue.training_switch import training_paused
from stylebot.storage.blobs import LocalBlobStore
from stylebot.terminal_status import worker_health_key

log = logging.getLogger(__name__)

# Progress events are for people: a few a second is plenty, and more would
# only fill the stream while a fast (tiny-model) job runs.
PROGRESS_INTERVAL_S = 0.5
QUEUE_READ_LIMIT = 1000
# How long an idle worker waits for a wake before it looks at the queue anyway.
WAKE_WAIT_S = 0.5
# Writing a checkpoint pauses training; a store slower than this is broken.
CHECKPOINT_WRITE_TIMEOUT_S = 300.0


class ProgressReporter:
    """Turns calls from the device thread into throttled events on the loop."""

    def __init__(
        self, publisher: EventPublisher, loop: asyncio.AbstractEventLoop, job_id: str, kind: JobKind
    ) -> None:
        self.publisher = publisher
        self.loop = loop
        self.job_id = job_id
        self.kind = kind
        self._last: float | None = None

    def __call__(self, step: int, total: int, loss: float | None = None) -> None:
        # The first call is always told: it says where a resumed run picks up.
        now = time.monotonic()
        if self._last is not None and step != total and now - self._last < PROGRESS_INTERVAL_S:
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
    device = ctx["device"] = DeviceScheduler()
    ctx["blobs"] = LocalBlobStore(settings.blob_dir)
    ctx["events"] = EventPublisher(ctx["redis"])
    ctx["checkpoints"] = CheckpointStore(ctx["redis"], ctx["blobs"])
    if "engine" not in ctx:
        from stylebot.engine.runtime import StyleEngine  # torch: only workers pay for it
        from stylebot.provenance.signing import signing_identity_for

        ctx["engine"] = await device.run(
            lambda: StyleEngine(
                settings.model,
                settings.data_dir / "cache",
                device=settings.device,
                dtype=settings.dtype,
                max_loaded_adapters=settings.max_loaded_adapters,
                signing=signing_identity_for(
                    settings.signing_dir, settings.c2pa_cert_chain, settings.c2pa_private_key
                ),
            ),
        )
    log.info("worker ready")


async def shutdown(ctx: dict[str, Any]) -> None:
    device: DeviceScheduler | None = ctx.get("device")
    if device is not None:
        # Off the loop: a training run saves a checkpoint through it on the way out.
        await asyncio.to_thread(device.shutdown)


def job_lease_s(settings: Settings) -> float:
    """How long a dead worker's job stays claimed before another worker takes it."""
    return settings.job_lease_s


async def train(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = TrainJob.from_dict(payload)
    async with JobLease(ctx["redis"], job.job_id, job_lease_s(ctx["settings"])):
        return await _train(ctx, job)


async def _train(ctx: dict[str, Any], job: TrainJob) -> dict[str, Any]:
    events: EventPublisher = ctx["events"]
    checkpoints: CheckpointStore = ctx["checkpoints"]
    watch = CancelWatch(ctx["redis"], job.job_id)
    if await watch.already_cancelled():
        await checkpoints.discard(job.job_id)
        await events.publish(JobEvent(job.job_id, "train", "cancelled"))
        return {"cancelled": True}
    done = await finished_training(ctx["redis"], job.job_id)
    if done is not None:
        # An earlier attempt trained the style and died before arq recorded
        # it: return that result rather than train a second time, and tell the
        # front end if that attempt could not.
        result, reported = done
        if not reported:
            await _report_trained(ctx, job.job_id, result)
        return result.to_dict()
    saved = await checkpoints.latest(job.job_id)
    resume_from, done_steps = saved if saved is not None else (None, 0)
    if saved is not None:
        log.info("training job %s resumes after step %d", job.job_id, done_steps)
    await events.publish(
        JobEvent(job.job_id, "train", "started", step=done_steps, total=job.settings.steps)
    )
    loop = asyncio.get_running_loop()
    # Set when arq cancels this coroutine (shutdown, time limit): the device
    # thread, which cannot be cancelled, then saves a checkpoint and stops.
    interrupted = threading.Event()

    def save_checkpoint(state: bytes, step: int) -> None:
        saving = checkpoints.save(job.job_id, state, step)
        asyncio.run_coroutine_threadsafe(saving, loop).result(timeout=CHECKPOINT_WRITE_TIMEOUT_S)

    device: DeviceScheduler = ctx["device"]
    try:
        images = [await ctx["blobs"].get(key) for key in job.image_keys]
        report = ProgressReporter(events, loop, job.job_id, "train")
        async with watch:
            weights = await device.run(
                lambda: ctx["engine"].train(
                    images,
                    job.trigger,
                    job.settings,
                    on_progress=report,
                    should_stop=lambda: watch.is_set() or interrupted.is_set(),
                    resume_from=resume_from,
                    on_checkpoint=save_checkpoint,
                    device_sharing=device,
                ),
            )
        lora_key = await ctx["blobs"].put(weights.data)
    except asyncio.CancelledError:
        interrupted.set()
        raise
    except JobCancelled:
        await checkpoints.discard(job.job_id)
        await events.publish(JobEvent(job.job_id, "train", "cancelled"))
        return {"cancelled": True}
    except Exception as exc:
        log.exception("training job %s failed", job.job_id)
        await events.publish(JobEvent(job.job_id, "train", "failed", error=_user_error(exc)))
        raise
    result = TrainResult(lora_key, weights.steps, weights.final_loss, weights.seconds)
    await remember_finished_training(ctx["redis"], job.job_id, result)
    await checkpoints.discard(job.job_id)
    await _report_trained(ctx, job.job_id, result)
    return result.to_dict()


async def _report_trained(ctx: dict[str, Any], job_id: str, result: TrainResult) -> None:
    await ctx["events"].publish(
        JobEvent(job_id, "train", "finished", step=result.steps, result=result.to_dict())
    )
    await mark_training_reported(ctx["redis"], job_id)


async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = GenerateJob.from_dict(payload)
    async with JobLease(ctx["redis"], job.job_id, job_lease_s(ctx["settings"])):
        return await _generate(ctx, job)


async def _generate(ctx: dict[str, Any], job: GenerateJob) -> dict[str, Any]:
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
            device: DeviceScheduler = ctx["device"]
            engine = ctx["engine"]
            images = await device.run_batched(
                lambda batch: _generate_together(engine, batch),
                _Generation(job, lora, report, watch),
                batch_key=generation_batch_key(job),
                max_batch=max_batch_size(ctx["settings"]),
            )
        if watch.is_set():  # cancelled while it shared a batch with jobs that went on
            raise JobCancelled(f"job {job.job_id} was cancelled")
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


@dataclass(frozen=True)
class _Generation:
    """One generation job's share of a batch."""

    job: GenerateJob
    lora: bytes | None
    report: ProgressReporter
    watch: CancelWatch


def _generate_together(engine: Any, batch: list[_Generation]) -> list[Any]:
    """Run on the device thread: one pipeline call for jobs that share a batch key."""

    def on_step(done: int, total: int) -> None:
        for item in batch:
            item.report(done, total)

    def should_stop() -> bool:
        # A batch stops only when every job in it was cancelled; a job
        # cancelled alone is dropped when the batch is done.
        return all(item.watch.is_set() for item in batch)

    jobs = [item.job for item in batch]
    result: list[Any] = engine.generate_batch(jobs, batch[0].lora, on_step, should_stop)
    return result


def max_batch_size(settings: Settings) -> int:
    """How many compatible generation requests share one pipeline call, at most."""
    return max(1, settings.max_batch_size)


def _user_error(exc: Exception) -> str:
    """What a chat user is told: the kind of failure, not a traceback."""
    if isinstance(exc, KeyError):
        return "an input file is missing from storage"
    if isinstance(exc, MemoryError):
        return "the worker ran out of memory"
    return f"the worker hit an error ({type(exc).__name__})"


@dataclass(frozen=True)
class _QueuedJob:
    function: str
    owner: str | None


class StyleWorker(Worker):
    """An arq Worker that takes jobs in fair order, and one training job at a time.

    Order: arq takes ready jobs by arrival; this worker takes them in
    `fair_order` instead, so that owners take turns (every worker on one Redis
    computes the same order from the queue alone).

    Training: the worker runs generation jobs alongside a training run (they
    get the device between two training steps, see `DeviceScheduler`), so it
    holds more arq slots than one; but a second training job would only wait
    for the device while holding a slot that generation needs, and while a
    worker on another host could have run it. So while this worker trains, it
    leaves the other training jobs in the queue, and picks only generation.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the jobs queued or running here are, read once per job.
        self._queued: dict[str, _QueuedJob] = {}

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        known = await self._describe(job_ids)
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        training = any(_is_training(known.get(job_id)) for job_id in running)
        # Paused by an operator: leave training jobs queued, like while training.
        training = training or await training_paused(self.pool)
        ids = [raw.decode() for raw in job_ids]
        for job_id in fair_order(ids, lambda i: _owner(known.get(i))):
            if not _is_training(known.get(job_id)):
                await super().start_jobs([job_id.encode()])
            elif not training:
                await super().start_jobs([job_id.encode()])
                # arq may leave it (running elsewhere); then the next one may be ours.
                training = job_id in self.tasks
            if self.job_counter >= self.max_jobs:
                return

    async def _poll_iteration(self) -> None:
        await super()._poll_iteration()
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            # Idle slots: wait for a front end's wake instead of arq's next
            # poll. Bounded, so that jobs nobody announces (retries after a
            # lapsed lease, deferred jobs) are still found within WAKE_WAIT_S.
            # A busy worker does not take wakes it could not act on.
            await self.pool.blpop([WAKE_KEY], timeout=WAKE_WAIT_S)

    async def _describe(self, job_ids: list[bytes]) -> dict[str, _QueuedJob]:
        ids = [raw.decode() for raw in job_ids]
        missing = [job_id for job_id in ids if job_id not in self._queued]
        if missing:
            payloads = await self.pool.mget([job_key_prefix + job_id for job_id in missing])
            for job_id, payload in zip(missing, payloads, strict=True):
                if payload is None:
                    continue  # finished (or expired) since it was listed
                job = deserialize_job(payload)
                args = job.get("a") or [{}]
                owner = args[0].get("owner") if isinstance(args[0], dict) else None
                self._queued[job_id] = _QueuedJob(job["f"], owner)
        # Forget jobs that left the queue, so this stays as small as the queue.
        keep = set(ids) | set(self.tasks)
        for job_id in [j for j in self._queued if j not in keep]:
            del self._queued[job_id]
        return self._queued


def _is_training(job: _QueuedJob | None) -> bool:
    return job is not None and job.function == "train"


def _owner(job: _QueuedJob | None) -> str | None:
    return None if job is None else job.owner


def build_worker(
    settings: Settings,
    redis_url: str,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    ctx: dict[str, Any] | None = None,
) -> Worker:
    """An arq Worker for these settings. `ctx` may carry a ready engine (tests)."""
    worker = StyleWorker(
        functions=[
            func(
                observed_job(train, "train"),
                name="train",
                timeout=timedelta(seconds=settings.train_timeout_s),
            ),
            func(
                observed_job(generate, "generate"),
                name="generate",
                timeout=timedelta(seconds=settings.generate_timeout_s),
            ),
        ],
        queue_name=QUEUE_NAME,
        redis_settings=redis_settings(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        # Every log line of a job's task carries its id, arq's result line too.
        on_job_start=bind_job_context,
        ctx={"settings": settings, **(ctx or {})},
        burst=burst,
        handle_signals=handle_signals,
        # One device: a training run plus enough generation jobs to fill a
        # batch; the device scheduler puts them first, between training steps.
        max_jobs=max(settings.worker_concurrency, max_batch_size(settings)) + 1,
        poll_delay=0.05,
        # Fair order is computed over the jobs read per poll: read enough that
        # one owner's burst cannot hide everyone else's jobs.
        queue_read_limit=QUEUE_READ_LIMIT,
        # A failed job reported its failure already; retrying is for crashes.
        max_tries=3,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        keep_result=timedelta(days=1),
        # One health-check key per worker, so `stylebot status` and the metrics
        # count workers; short, so a dead worker drops out within seconds.
        health_check_key=worker_health_key(f"{socket.gethostname()}-{os.getpid()}"),
        health_check_interval=10,
    )
    # arq claims a job for its longest timeout (hours, for training) plus 10 s;
    # claim it for one lease instead, which the job renews while it runs (see
    # stylebot.queue.recovery), so a killed worker's job is retried soon.
    worker.in_progress_timeout_s = job_lease_s(settings)
    return worker
