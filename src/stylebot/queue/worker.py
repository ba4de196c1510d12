"""The GPU worker: arq functions for the two job kinds, taking `ctx` like any arq job.

`ctx` holds the engine (base pipeline loaded once at start-up and kept), the
blob store, the event publisher, and the one thread that touches the device.
The worker never opens the database: it reads blobs named in the payload,
writes result blobs, and reports through events and its return value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from arq import func
from arq.constants import job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker

from stylebot.bot.core.errors import StorageFull
from stylebot.config import Settings
from stylebot.engine.lora_files import LoraMismatchError
from stylebot.engine.runtime import (
    FinishedImage,
    JobCancelled,
    TrainingPreviews,
    generation_batch_key,
)
from stylebot.log_privacy import private_texts
from stylebot.logs import bind_job_context
from stylebot.metrics import observed_job
from stylebot.queue.cache_revocation import CacheRevocationWatch
from stylebot.queue.connection import (
    QUEUE_NAME,
    WAKE_KEY,
    cancel_key,
    deserialize_job,
    queued_job_ttl_text,
    redis_settings,
    serialize_job,
)
from stylebot.queue.damaged_inputs import (
    DamagedInput,
    read_style_weights,
    read_training_images,
)
from stylebot.queue.events import EventPublisher
from stylebot.queue.fairness import LANES, Lane, Turn, lane_of, lanes_in_fair_order
from stylebot.queue.forgetting import result_without_arguments
from stylebot.queue.loop_handoff import LoopGone, loop_stopped, run_on_loop
from stylebot.queue.outage import is_outage, until_redis_answers
from stylebot.queue.outage_worker import OutageTolerantWorker
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
from stylebot.queue.progress import StepTimeEstimate
from stylebot.queue.recovery import (
    CheckpointStore,
    JobLease,
    finished_training,
    give_back_try,
    mark_training_reported,
    remember_finished_training,
    stop_helper,
)
from stylebot.queue.scheduler import DeviceScheduler
from stylebot.queue.training_switch import training_paused
from stylebot.queue.turns import claim, drop_turn, queue_version, read_turns, turns_key
from stylebot.queue.worker_presence import WorkerPresence, this_worker_id
from stylebot.redis_replies import awaited
from stylebot.storage.blobs import LocalBlobStore
from stylebot.terminal_status import worker_health_key

log = logging.getLogger(__name__)

# Progress events are for people: a few a second is plenty, and more would
# only fill the stream while a fast (tiny-model) job runs.
PROGRESS_INTERVAL_S = 0.5
QUEUE_READ_LIMIT = 1000
# Reads of the queue per poll while jobs keep arriving (each new job means a
# fresh read, so none is passed over); then the next poll goes on.
QUEUE_READS_PER_POLL = 3
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
        # Every step is timed, also those whose progress is not sent.
        self._pace = StepTimeEstimate()

    def __call__(self, step: int, total: int, loss: float | None = None) -> None:
        # The first call is always told: it says where a resumed run picks up.
        now = time.monotonic()
        self._pace.observe(step, now)
        if self._last is not None and step != total and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        eta_s = self._pace.seconds_left(step, total)
        event = JobEvent(
            self.job_id, self.kind, "progress", step=step, total=total, loss=loss, eta_s=eta_s
        )
        if loop_stopped(self.loop):
            return  # the worker is exiting: nobody would send it
        asyncio.run_coroutine_threadsafe(self.publisher.publish(event), self.loop)


class CancelWatch:
    """Watches a job's cancel key from the event loop; the device thread reads `is_set`.

    Checked every CANCEL_POLL_S, well under a training step on a GPU, so a
    cancel takes effect at the next step.
    """

    CANCEL_POLL_S = 0.2
    # After a failed check: a little longer, not to hammer a Redis in trouble.
    CANCEL_RETRY_S = 1.0

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
        failing = False
        while not self._flag.is_set():
            try:
                cancelled = await self.redis.exists(self.key)
            except Exception as exc:
                # A Redis blip: keep watching, or a later /cancel goes unseen. Said
                # once, not every second of an outage.
                if not failing:
                    log.warning("checking %s for a cancel failed: %r", self.key, exc)
                failing = True
                await asyncio.sleep(self.CANCEL_RETRY_S)
                continue
            failing = False
            if cancelled:
                self._flag.set()
                return
            await asyncio.sleep(self.CANCEL_POLL_S)

    async def __aenter__(self) -> CancelWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await stop_helper(self._task, f"cancel watch of {self.key}")


class JobTimedOut(Exception):
    """A job ran past its time limit; arq records it as failed."""

    def __init__(self, message: str, user_error: str) -> None:
        super().__init__(message)
        self.user_error = user_error


class JobFailed(Exception):
    """What a failed job hands arq, in place of its error: arq logs it (with a trace)
    after the job has left `private_texts`, and keeps it with the job's result, so it
    names the job and the kind of error, never the error's text (which may quote a
    prompt or a style name). The error itself was logged while the job ran."""


class Interruption:
    """Set from the event loop when the worker itself ends a job: the job ran past
    its time limit, failed, or the worker is shutting down. The device thread
    reads it between two steps, as it reads a cancel (a thread cannot be
    cancelled). It also tracks the job's work on the device thread, which goes
    on after the job's task is cancelled, so the job can wait for it to stop."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        # Final: nothing will resume the run, so no checkpoint is worth saving.
        self.final = False
        self._device_work: list[asyncio.Future[Any]] = []

    def time_out(self) -> None:
        self.fail()

    def fail(self) -> None:
        self.final = True
        self._flag.set()

    def shut_down(self) -> None:
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def track(self, work: asyncio.Future[Any]) -> None:
        """`work` runs on the device thread; `settled` waits for it."""
        self._device_work.append(work)

    async def settled(self) -> None:
        """Wait until the job's device work has stopped (and saved what it saves).

        Further cancels (arq's close() cancels the job again) do not cut the
        wait short: the device thread cannot be stopped anyway, and the worker
        waits for it before it exits. A cancel is raised again once it is done.
        """
        # Outcomes are read here, so that none is logged as never retrieved.
        waiting = asyncio.gather(*self._device_work, return_exceptions=True)
        cancelled = False
        while not waiting.done():
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError


def own_time_limit_s(limit_s: float) -> float:
    """When a job ends itself: a little before arq's limit, so it can say why.

    arq's own limit cancels the job without a word to its user; it stays as
    the backstop.
    """
    return max(limit_s * 0.8, limit_s - 5.0)


async def _within_limits(
    ctx: dict[str, Any],
    job_id: str,
    kind: JobKind,
    limit_s: float,
    interruption: Interruption,
    run: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a job to its end, its time limit, or the worker's shutdown.

    Time limit: the job stops at its next step and fails (`_reporting_failure`
    tells its user). Shutdown (arq cancels running jobs on SIGTERM): the job
    stops at its next step, saves a checkpoint if it trains, and only then goes
    back on the queue (its lease renewed meanwhile), so the next run resumes
    from that checkpoint; that run does not count as one of the job's tries.
    """
    deadline = asyncio.timeout(own_time_limit_s(limit_s))
    try:
        async with deadline:
            return await run()
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of something inside the job: an error like any other
        interruption.time_out()
        log.warning("%s job %s ran past its %g s limit", kind, job_id, limit_s)
        raise JobTimedOut(
            f"{kind} job {job_id} ran past its {limit_s:g} s limit",
            f"it took longer than the {limit_s:g} s limit",
        ) from None
    except asyncio.CancelledError:
        interruption.shut_down()
        log.info(
            "%s job %s interrupted by the worker's shutdown; it goes back on the queue "
            "once it has stopped",
            kind,
            job_id,
        )
        try:
            await interruption.settled()
        finally:
            try:
                await give_back_try(ctx["redis"], job_id)
            except Exception as exc:  # the job still runs again; only its try counts
                log.warning(
                    "could not give back the try of interrupted job %s: %r",
                    job_id,
                    exc,
                    exc_info=not is_outage(exc),
                )
        raise


@contextlib.asynccontextmanager
async def _reporting_failure(
    ctx: dict[str, Any], job_id: str, kind: JobKind, interruption: Interruption
) -> AsyncIterator[None]:
    """Every error of a job, wherever it is raised, reaches its user as "failed".

    arq does not retry a job that raised: a training's checkpoint is discarded
    too, once its device work has stopped (a save under way could otherwise
    write it again after the discard).
    """
    try:
        yield
    except Exception as exc:
        if isinstance(exc, DamagedInput | StorageFull):
            # One line that says what to do (a damaged file, a full disk): not a bug, so
            # a traceback would add nothing.
            log.error("%s job %s failed: %s", kind, job_id, exc)
        elif not isinstance(exc, JobTimedOut):
            log.exception("%s job %s failed", kind, job_id)
        interruption.fail()
        try:
            event = JobEvent(
                job_id,
                kind,
                "failed",
                error=_user_error(exc),
                # The same damaged file would fail the same way again.
                retryable=not isinstance(exc, DamagedInput),
            )
            await ctx["events"].publish(event)
        except Exception:
            log.exception("could not report the failure of %s job %s", kind, job_id)
        if kind == "train":
            # Shielded: arq's own time limit may cancel the job meanwhile.
            await asyncio.shield(_discard_when_stopped(ctx, job_id, interruption))
        raise JobFailed(f"{kind} job {job_id} failed ({type(exc).__name__})") from None


async def _discard_when_stopped(
    ctx: dict[str, Any], job_id: str, interruption: Interruption
) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # it waits on; the discard follows
        await interruption.settled()
    try:
        await ctx["checkpoints"].discard(job_id)
    except Exception:
        log.exception("could not discard the checkpoint of failed training job %s", job_id)


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
                    settings.signing_dir,
                    settings.c2pa_cert_chain,
                    settings.c2pa_private_key,
                    settings.c2pa_tsa_url,
                ),
                family=settings.base_model_family,
                config=settings.base_model_config or None,
                few_step=settings.few_step_model,
                lora_hotswap=settings.lora_hotswap,
                lora_hotswap_rank=settings.lora_hotswap_rank,
                max_image_pixels=settings.max_upload_pixels,
                cache_max_bytes=settings.worker_cache_max_bytes,
            ),
        )
    cache = getattr(ctx["engine"], "cache", None)
    if cache is not None:
        # Deleted styles' weights leave this worker's disk: those deleted while it was
        # away now, later ones as they come.
        engine = ctx["engine"]

        async def unload(keys: Sequence[str]) -> int:
            # Between jobs, on the device thread: a job may be using the pipeline.
            return int(await device.run(lambda: engine.unload_blobs(keys)))

        has_unload = hasattr(engine, "unload_blobs")
        watch = ctx["cache_revocations"] = CacheRevocationWatch(
            ctx["redis"], cache, unload=unload if has_unload else None
        )
        await watch.start()
    ctx["worker_id"] = this_worker_id()
    presence = ctx["presence"] = WorkerPresence(ctx["redis"], ctx["worker_id"])
    await presence.start()
    log.info("worker ready")


async def shutdown(ctx: dict[str, Any]) -> None:
    presence: WorkerPresence | None = ctx.get("presence")
    if presence is not None:
        await presence.stop()
    watch: CacheRevocationWatch | None = ctx.get("cache_revocations")
    if watch is not None:
        await watch.stop()
    device: DeviceScheduler | None = ctx.get("device")
    if device is not None:
        # Off the loop: a training run saves a checkpoint through it on the way out.
        await asyncio.to_thread(device.shutdown)


def job_lease_s(settings: Settings) -> float:
    """How long a dead worker's job stays claimed before another worker takes it."""
    return settings.job_lease_s


async def train(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = TrainJob.from_dict(payload)
    with private_texts(job.style_name, job.trigger):
        return await _run_job(
            ctx,
            job.job_id,
            "train",
            ctx["settings"].train_timeout_s,
            lambda interruption: _train(ctx, job, interruption),
        )


async def _run_job(
    ctx: dict[str, Any],
    job_id: str,
    kind: JobKind,
    limit_s: float,
    body: Callable[[Interruption], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """A job under its lease and time limit, every failure reported to its user."""
    interruption = Interruption()
    async with (
        _reporting_failure(ctx, job_id, kind, interruption),
        JobLease(ctx["redis"], job_id, job_lease_s(ctx["settings"]), ctx.get("worker_id")),
    ):
        return await _within_limits(
            ctx, job_id, kind, limit_s, interruption, lambda: body(interruption)
        )


async def _train(ctx: dict[str, Any], job: TrainJob, interruption: Interruption) -> dict[str, Any]:
    events: EventPublisher = ctx["events"]
    checkpoints: CheckpointStore = ctx["checkpoints"]
    watch = CancelWatch(ctx["redis"], job.job_id)
    loop = asyncio.get_running_loop()

    def save_checkpoint(state: bytes, step: int) -> None:
        if interruption.final:
            return  # the job failed: nothing will resume it
        try:
            # Gives up at once if the loop stopped (the worker is exiting): waiting
            # on it would hold the device thread, and the process, for ever.
            run_on_loop(checkpoints.save(job.job_id, state, step), loop, CHECKPOINT_WRITE_TIMEOUT_S)
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
        sending = _send_preview(ctx, job, step, preview, image.png)
        previews_sent.append(asyncio.run_coroutine_threadsafe(sending, loop))

    device: DeviceScheduler = ctx["device"]
    try:
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
        images = await read_training_images(ctx["blobs"], job.image_keys)
        report = ProgressReporter(events, loop, job.job_id, "train")
        async with watch:
            training = asyncio.ensure_future(
                device.run(
                    lambda: ctx["engine"].train(
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
                    ),
                )
            )
            # Shielded: a cancelled job still knows when the thread stops (and
            # has saved its checkpoint), see `Interruption.settled`.
            interruption.track(training)
            weights = await asyncio.shield(training)
        for sent in previews_sent:
            await asyncio.wrap_future(sent)
        # No LoRA bytes: only a textual-inversion embedding trained ("" names no blob).
        lora_key = await ctx["blobs"].put(weights.data) if weights.data else ""
        export_key = await ctx["blobs"].put(weights.export_data) if weights.export_data else None
        embedding_key = (
            await ctx["blobs"].put(weights.embedding_data) if weights.embedding_data else None
        )
    except JobCancelled:
        await checkpoints.discard(job.job_id)
        await events.publish(JobEvent(job.job_id, "train", "cancelled"))
        return {"cancelled": True}
    result = TrainResult(
        lora_key,
        weights.steps,
        weights.final_loss,
        weights.seconds,
        weights.validation,
        export_key=export_key,
        embedding_key=embedding_key,
    )
    # Trained: through a Redis outage, wait to record it rather than train it again.
    await until_redis_answers(
        lambda: remember_finished_training(ctx["redis"], job.job_id, result),
        f"recording the result of training job {job.job_id}",
    )
    await until_redis_answers(
        lambda: checkpoints.discard(job.job_id), f"dropping the checkpoint of {job.job_id}"
    )
    await _report_trained(ctx, job.job_id, result)
    return result.to_dict()


async def _send_preview(
    ctx: dict[str, Any], job: TrainJob, step: int, preview: TrainingPreview, png: bytes
) -> None:
    """Store a training preview (watermarked by the engine) and tell the front end."""
    try:
        stored = dataclasses.replace(preview, blob_key=await ctx["blobs"].put(png))
        event = JobEvent(
            job.job_id, "train", "progress", step=step, total=job.settings.steps, preview=stored
        )
        await ctx["events"].publish(event)
    except Exception:  # a preview is a courtesy: the run goes on without it
        log.exception("training preview of job %s at step %d was not sent", job.job_id, step)


async def _report_trained(ctx: dict[str, Any], job_id: str, result: TrainResult) -> None:
    await ctx["events"].publish(
        JobEvent(job_id, "train", "finished", step=result.steps, result=result.to_dict())
    )
    await until_redis_answers(
        lambda: mark_training_reported(ctx["redis"], job_id), f"noting {job_id} reported"
    )


async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    job = GenerateJob.from_dict(payload)
    with private_texts(job.prompt, job.negative_prompt, job.style_name, job.trigger):
        return await _run_job(
            ctx,
            job.job_id,
            "generate",
            ctx["settings"].generate_timeout_s,
            lambda interruption: _generate(ctx, job, interruption),
        )


async def _generate(
    ctx: dict[str, Any], job: GenerateJob, interruption: Interruption
) -> dict[str, Any]:
    events: EventPublisher = ctx["events"]
    watch = CancelWatch(ctx["redis"], job.job_id)
    started = time.perf_counter()
    try:
        if await watch.already_cancelled():
            await events.publish(JobEvent(job.job_id, "generate", "cancelled"))
            return {"cancelled": True}
        await events.publish(JobEvent(job.job_id, "generate", "started", total=job.steps))
        lora = (
            await read_style_weights(ctx["blobs"], job.lora_key, job.style_id, job.style_name)
            if job.lora_key
            else None
        )
        report = ProgressReporter(events, asyncio.get_running_loop(), job.job_id, "generate")
        async with watch:
            device: DeviceScheduler = ctx["device"]
            engine = ctx["engine"]
            if job.embedding_key:  # the engine loads it by key, from its own disk
                embedding = await read_style_weights(
                    ctx["blobs"], job.embedding_key, job.style_id, job.style_name
                )
                engine.store_embedding(job.embedding_key, embedding)
            images = await device.run_batched(
                lambda batch: _generate_together(engine, batch),
                _Generation(job, lora, report, watch, interruption),
                batch_key=generation_batch_key(
                    job, mixed_styles=mixed_style_batches(ctx["settings"], engine)
                ),
                max_batch=max_batch_size(ctx["settings"]),
            )
        if isinstance(images, LoraMismatchError):  # its style failed; others in the batch went on
            raise images
        if watch.is_set():  # cancelled while it shared a batch with jobs that went on
            raise JobCancelled(f"job {job.job_id} was cancelled")
        stored = [
            GeneratedImage(image.output_id, await ctx["blobs"].put(image.png), image.seed)
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


def _generate_together(engine: Any, batch: list[_Generation]) -> list[Any]:
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


def mixed_style_batches(settings: Settings, engine: Any) -> bool:
    """Whether jobs in different styles may share a pipeline call: "auto" on CUDA
    only, where a bigger batch is nearly free; on the CPU it saves nothing."""
    if settings.mixed_style_batches == "auto":
        return bool(engine.device_type == "cuda")
    return settings.mixed_style_batches == "on"


def max_batch_size(settings: Settings) -> int:
    """How many compatible generation requests share one pipeline call, at most."""
    return max(1, settings.max_batch_size)


def _user_error(exc: Exception) -> str:
    """What a chat user is told: the kind of failure, not a traceback."""
    if isinstance(exc, JobTimedOut):
        return exc.user_error
    if isinstance(exc, KeyError):
        return "an input file is missing from storage"
    if isinstance(exc, MemoryError):
        return "the worker ran out of memory"
    if isinstance(exc, LoraMismatchError):
        return exc.user_message
    # Errors written for users (trainer.TrainingNotFinite); duck-typed, as
    # importing the trainer here would pull torch into the front end.
    message = getattr(exc, "user_message", None)
    if isinstance(message, str) and message:
        return message
    return f"the worker hit an error ({type(exc).__name__})"


@dataclass(frozen=True)
class _QueuedJob:
    function: str
    # Fixed when the job was queued (None: queued before turns were kept).
    turn: Turn | None


class StyleWorker(OutageTolerantWorker):
    """An arq Worker that takes jobs in fair order, and one training job at a time.

    Order: arq takes ready jobs by arrival; this worker takes them in
    `lanes_in_fair_order` instead (generation first; in each lane by the turn
    each job was given when it was queued, `stylebot.queue.turns`), so every
    worker on one Redis starts jobs in the same order, the one the front end
    tells users (`JobQueue.waiting_order`). A job starts only on a read of the
    queue no newer job has outdated (`stylebot.queue.turns.claim`), which also
    moves its lane's current round; a finished job leaves the order; a retried
    one keeps its turn.

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
        # Jobs this worker claimed (started, or found started elsewhere).
        self._claimed: set[str] = set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq read `job_ids` a moment ago: read the queue again at a known
        # version, so that a job queued since is not passed over.
        for _read in range(QUEUE_READS_PER_POLL):
            version = await queue_version(self.pool)
            ready: list[bytes] = await self.pool.zrangebyscore(
                self.queue_name,
                min=float("-inf"),
                max=timestamp_ms(),
                start=0,
                num=QUEUE_READ_LIMIT,
            )
            if await self._start_in_order(ready, version):
                return

    async def _start_in_order(self, job_ids: list[bytes], version: bytes) -> bool:
        """Start jobs in fair order while slots are free; False when a job was queued
        after `version`, and the queue must be read again."""
        known = await self._describe(job_ids)
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        training = any(_is_training(known.get(job_id)) for job_id in running)
        # Paused by an operator: leave training jobs queued, like while training.
        paused = await training_paused(self.pool)
        training = training or paused
        ids = [raw.decode() for raw in job_ids]
        turns = {i: job.turn for i, job in known.items() if job.turn is not None}
        in_order = lanes_in_fair_order(ids, turns, lambda i: _is_training(known.get(i)))
        for job_id in in_order:
            job = known.get(job_id)
            if _is_training(job) and training:
                continue
            if job is None and paused:
                continue  # of unknown kind: it may be a training job
            if job_id not in self._claimed:
                lane: Lane = lane_of(job.function) if job is not None else "generate"
                if not await claim(self.pool, version, lane, job_id):
                    return False
                self._claimed.add(job_id)
            await super().start_jobs([job_id.encode()])
            if _is_training(job):
                # arq may leave it (running elsewhere); then the next one may be ours.
                training = job_id in self.tasks
            if self.job_counter >= self.max_jobs:
                return True
        return True

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        async def record() -> None:
            await super(StyleWorker, self).finish_job(
                job_id,
                finish,
                result_without_arguments(result_data),
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            if finish:  # not finished: arq retries it, in its turn
                await drop_turn(self.pool, job_id)

        # Through an outage: a result lost here means the job runs again.
        await self.lasting(record, f"recording the end of job {job_id}")

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq fails a job without running it (tried too often, expired while queued):
        tell its user, and drop a training's checkpoint, as a failed run does."""
        # Read before arq deletes the job's keys and its turn is dropped.
        try:
            kind, error = await self._why_failed(job_id)
        except Exception:
            log.exception("could not read why arq failed job %s", job_id)
            kind, error = self._kind_known(job_id) or "train", "the worker could not run it"

        async def record() -> None:
            await super(StyleWorker, self).finish_failed_job(
                job_id, result_without_arguments(result_data)
            )
            await drop_turn(self.pool, job_id)

        await self.lasting(record, f"recording the failure of job {job_id}")
        log.warning("job %s failed before it ran: %s", job_id, error)
        try:
            await self._report_unrun_failure(job_id, kind, error)
        except Exception:
            log.exception("could not report the failure of job %s", job_id)

    async def _why_failed(self, job_id: str) -> tuple[JobKind, str]:
        """The job's kind and what its user is told of why arq failed it."""
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.get(job_key_prefix + job_id)
            pipe.get(retry_key_prefix + job_id)
            payload, tries = await pipe.execute()
        if payload is None:
            # arq fails a job whose key expired: it waited too long to start.
            kind = self._kind_known(job_id) or await self._kind_by_turn(job_id)
            return kind or "train", f"it waited longer than {queued_job_ttl_text()} in the queue"
        kind = lane_of(str(deserialize_job(payload).get("f", "")))
        runs = int(tries or 0)
        if runs > self.max_tries:
            # Only runs that crashed count (an interrupted run gives its try back).
            return kind, f"the worker stopped {runs - 1} times while running it"
        return kind, "the worker could not run it"

    def _kind_known(self, job_id: str) -> JobKind | None:
        job = self._queued.get(job_id)
        return None if job is None else lane_of(job.function)

    async def _kind_by_turn(self, job_id: str) -> JobKind | None:
        """A job's kind by the lane its turn is in (its payload being gone)."""
        for lane in LANES:
            if await awaited(self.pool.hexists(turns_key(lane), job_id)):
                return lane
        return None

    async def _report_unrun_failure(self, job_id: str, kind: JobKind, error: str) -> None:
        ctx = self.ctx
        if kind == "train":
            done = await finished_training(self.pool, job_id)
            if done is not None:
                # An earlier run trained it and died before arq recorded that:
                # the style is there, so report it rather than a failure.
                result, reported = done
                if not reported:
                    await _report_trained(ctx, job_id, result)
                return
        await ctx["events"].publish(JobEvent(job_id, kind, "failed", error=error))
        if kind == "train":
            await ctx["checkpoints"].discard(job_id)

    def handle_sig(self, signum: int) -> None:
        """arq's stop handler, except that a job's task is cancelled only once.

        A cancelled job stops at its next step and, training, saves a checkpoint
        before arq hands it back to the queue (see `_within_limits`). A second
        cancel (a second SIGTERM; arq's close() signals again when it does not
        handle signals) would make arq hand it back at once, and another worker
        resume it from an older checkpoint while this one still saves.
        """
        sig = signal.Signals(signum)
        self.stopping = True
        log.info(
            "shutdown on %s: %d jobs running stop at their next step",
            sig.name,
            sum(not task.done() for task in self.tasks.values()),
        )
        for task in self.tasks.values():
            if not task.done() and not task.cancelling():
                task.cancel()
        if self.main_task is not None:
            self.main_task.cancel()
        if self.on_stop is not None:
            self.on_stop(sig)

    async def poll_once(self) -> None:
        await super().poll_once()
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            # Idle slots: wait for a front end's wake instead of arq's next
            # poll. Bounded, so that jobs nobody announces (retries after a
            # lapsed lease, deferred jobs) are still found within WAKE_WAIT_S.
            # A busy worker does not take wakes it could not act on.
            woken = await awaited(
                self.pool.blpop([WAKE_KEY], timeout=WAKE_WAIT_S)  # type: ignore[arg-type]  # redis-py: int; Redis 6+ takes a float
            )
            if woken is not None and self.allow_pick_jobs:
                # Take the announced job now: returning would first sleep
                # what is left of arq's poll_delay (measured: ~45 ms a job).
                await super().poll_once()

    async def _describe(self, job_ids: list[bytes]) -> dict[str, _QueuedJob]:
        ids = [raw.decode() for raw in job_ids]
        missing = [job_id for job_id in ids if job_id not in self._queued]
        if missing:
            payloads = await self.pool.mget([job_key_prefix + job_id for job_id in missing])
            functions = {
                job_id: deserialize_job(payload)["f"]
                for job_id, payload in zip(missing, payloads, strict=True)
                if payload is not None  # finished (or expired) since it was listed
            }
            turns: dict[str, Turn] = {}
            for lane in {lane_of(function) for function in functions.values()}:
                in_lane = [j for j, function in functions.items() if lane_of(function) == lane]
                turns.update(await read_turns(self.pool, lane, in_lane))
            # No payload: finished since it was listed, or its key expired. A job
            # still queued keeps its turn, whose lane tells its kind (a training
            # job must not start while training is paused).
            gone = [job_id for job_id in missing if job_id not in functions]
            for lane in LANES if gone else ():
                for job_id, turn in (await read_turns(self.pool, lane, gone)).items():
                    functions[job_id] = lane
                    turns[job_id] = turn
            for job_id, function in functions.items():
                # A turn never changes once given, so it is read once per job.
                self._queued[job_id] = _QueuedJob(function, turns.get(job_id))
        # Forget jobs that left the queue, so this stays as small as the queue.
        keep = set(ids) | set(self.tasks)
        for job_id in [j for j in self._queued if j not in keep]:
            del self._queued[job_id]
        self._claimed &= keep
        return self._queued


def _is_training(job: _QueuedJob | None) -> bool:
    return job is not None and job.function == "train"


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
                observed_job(train, "train"),  # type: ignore[arg-type]  # arq's WorkerCoroutine wants *args; it passes the payload
                name="train",
                timeout=timedelta(seconds=settings.train_timeout_s),
            ),
            func(
                observed_job(generate, "generate"),  # type: ignore[arg-type]  # arq's WorkerCoroutine wants *args; it passes the payload
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
        # Results hold no job arguments (`result_without_arguments`), nor do logs:
        # arq's result line is off, its start line filtered (stylebot.logs).
        log_results=False,
        # One health-check key per worker, so `stylebot status` and the metrics
        # count workers; short, so a dead worker drops out within seconds.
        health_check_key=worker_health_key(this_worker_id()),
        health_check_interval=10,
    )
    # arq claims a job for its longest timeout (hours, for training) plus 10 s;
    # claim it for one lease instead, which the job renews while it runs (see
    # stylebot.queue.recovery), so a killed worker's job is retried soon.
    worker.in_progress_timeout_s = job_lease_s(settings)
    return worker
