"""A job's lifecycle around its body: lease, time limit, cancel, shutdown, end, failure.

`run_job` holds the job's lease (`JobLease`) while it runs, ends it at its time
limit or the worker's shutdown (`Interruption`, read by the device thread between
two steps, as a cancel is: `CancelWatch`), and tells its user of every failure. A
body ends with `report_finished`, which keeps the finished event in Redis in the
step that tells it: a run after one that finished (its worker stopped or died before
arq recorded the job) finds that end, tells it if untold, once, and does not do the
work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from stylebot.bot.core.errors import StorageFull
from stylebot.config import Settings
from stylebot.engine.lora_loading import LoraMismatchError
from stylebot.log_privacy import private_texts
from stylebot.queue.damaged_inputs import DamagedInput
from stylebot.queue.keys import cancel_key
from stylebot.queue.outage import STOPPING_REPLY_WAIT_S, is_outage, until_redis_answers
from stylebot.queue.payloads import JobEvent, JobKind
from stylebot.queue.recovery import (
    JobEnd,
    JobLease,
    earlier_end,
    give_back_try,
    remember_end,
    stop_helper,
)
from stylebot.queue.worker_context import WorkerContext

log = logging.getLogger(__name__)


class CancelWatch:
    """Watches a job's cancel key from the event loop; the device thread reads `is_set`.

    Checked every CANCEL_POLL_S, well under a training step on a GPU, so a
    cancel takes effect at the next step.
    """

    CANCEL_POLL_S = 0.2
    # After a failed check: a little longer, not to hammer a Redis in trouble.
    CANCEL_RETRY_S = 1.0

    def __init__(self, redis: Redis, job_id: str) -> None:
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
        # It only records how it ended: its result, or its failure (`RunningJobs`).
        self.recording = False
        # The job's own time limit while its body runs (`_within_limits`).
        self.deadline: asyncio.Timeout | None = None
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

    def now_recording(self) -> None:
        """From here the job only stores and tells how it ended (its work is done, or
        it failed): a shutdown lets it, for a while, and its own time limit no longer
        applies (work done in time is not failed for the time its result takes to
        store; arq's limit, a minute later, stays the backstop)."""
        self.recording = True
        if self.deadline is not None and not self.deadline.expired():
            self.deadline.reschedule(None)

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


async def report_cancelled(context: WorkerContext, job_id: str, kind: JobKind) -> dict[str, Any]:
    """Tell the front end the job was cancelled; what the job body returns then."""
    await context.events.publish(JobEvent(job_id, kind, "cancelled"))
    return {"cancelled": True}


async def report_finished(
    context: WorkerContext,
    event: JobEvent,
    *,
    after_recording: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """A job's finished event, kept in Redis as it is told (through an outage); what
    the job body returns. A later run (the worker stopped or died before arq recorded
    this one) finds it and does not do the work again (`run_job`).

    `after_recording` runs once the event is kept and before it is told: a training
    drops its checkpoint there, so the event is kept in a step of its own first."""
    job_id = event.job_id
    if after_recording is not None:
        await until_redis_answers(
            lambda: remember_end(context.redis, event), f"recording the end of job {job_id}"
        )
        await after_recording()
    return await report_end(context, JobEnd(event, told=False))


async def report_end(
    context: WorkerContext, end: JobEnd, *, give_up: Callable[[], bool] = lambda: False
) -> dict[str, Any]:
    """Tell a job's kept end unless it was told (once: `EventPublisher.publish_end`);
    what arq records for the job."""
    if not end.told:
        await context.events.publish_end(end.event, give_up=give_up)
    return dict(end.event.result or {})


async def _within_limits(
    context: WorkerContext,
    job_id: str,
    kind: JobKind,
    limit_s: float,
    interruption: Interruption,
    run: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a job to its end, its time limit, or the worker's shutdown.

    Time limit: the job stops at its next step and fails (`_reporting_failure`
    tells its user). Shutdown (`RunningJobs.stop_all` cancels the job, unless it
    only records how it ended): the job stops at its next step, saves a checkpoint
    if it trains, and only then goes back on the queue (its lease renewed
    meanwhile), so the next run resumes from that checkpoint; `run_job` gives
    back the try.
    """
    deadline = asyncio.timeout(limit_s)
    try:
        async with deadline:
            interruption.deadline = deadline
            try:
                return await run()
            finally:
                interruption.deadline = None
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
        await interruption.settled()
        raise


async def _give_back_try(context: WorkerContext, job_id: str) -> None:
    try:
        async with asyncio.timeout(STOPPING_REPLY_WAIT_S):
            await give_back_try(context.redis, job_id)
    except Exception as exc:  # the job still runs again; only its try counts
        log.warning(
            "could not give back the try of interrupted job %s: %r",
            job_id,
            exc,
            exc_info=not is_outage(exc),
        )


@contextlib.asynccontextmanager
async def _reporting_failure(
    context: WorkerContext, job_id: str, kind: JobKind, interruption: Interruption
) -> AsyncIterator[None]:
    """Every error of a job, wherever it is raised, reaches its user as "failed".

    arq does not retry a job that raised: a training's checkpoint is discarded
    too, once its device work has stopped (a save under way could otherwise
    write it again after the discard).
    """
    try:
        yield
    except Exception as exc:
        # Telling it is how it ends: a shutdown lets it, for a while (`RunningJobs`).
        interruption.now_recording()
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
                error=user_error(exc),
                # The same damaged file would fail the same way again.
                retryable=not isinstance(exc, DamagedInput),
            )
            await context.events.publish(event)
        except Exception:
            log.exception("could not report the failure of %s job %s", kind, job_id)
        if kind == "train":
            # Shielded: arq's own time limit may cancel the job meanwhile.
            await asyncio.shield(_discard_when_stopped(context, job_id, interruption))
        raise JobFailed(f"{kind} job {job_id} failed ({type(exc).__name__})") from None


async def _discard_when_stopped(
    context: WorkerContext, job_id: str, interruption: Interruption
) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # it waits on; the discard follows
        await interruption.settled()
    try:
        await context.checkpoints.discard(job_id)
    except Exception:
        log.exception("could not discard the checkpoint of failed training job %s", job_id)


def time_limit_s(settings: Settings, kind: JobKind) -> float:
    """The time limit of a job of this kind (arq's backstop: `arq_time_limit_s`)."""
    return settings.train_timeout_s if kind == "train" else settings.generate_timeout_s


async def run_job(
    context: WorkerContext,
    job_id: str,
    kind: JobKind,
    private: tuple[str | None, ...],
    body: Callable[[Interruption], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """A job under its lease and time limit, every failure reported to its user, and
    no log line quoting its `private` texts (a prompt, a style's name)."""
    interruption = Interruption()
    limit_s = time_limit_s(context.settings, kind)

    async def unless_it_ended() -> dict[str, Any]:
        end = await earlier_end(context.redis, job_id)
        if end is None:
            return await body(interruption)
        # An earlier run finished it and stopped (or died) before arq recorded that:
        # its result stands, and is told once.
        interruption.now_recording()
        log.info("%s job %s had finished; its result is kept", kind, job_id)
        if kind == "train":  # that run may have died before it dropped its checkpoint
            await context.checkpoints.discard(job_id)
        return await report_end(context, end)

    # Registered throughout, failure reporting included: a shutdown stops all of it.
    with private_texts(*private), context.running_jobs.running(interruption):
        try:
            async with (
                _reporting_failure(context, job_id, kind, interruption),
                JobLease(context.redis, job_id, context.settings.job_lease_s, context.worker_id),
            ):
                return await _within_limits(
                    context, job_id, kind, limit_s, interruption, unless_it_ended
                )
        except asyncio.CancelledError:
            # Stopped by the worker's shutdown, wherever it was: the run goes back on
            # the queue, and does not count as one of the job's tries.
            await _give_back_try(context, job_id)
            raise


def user_error(exc: Exception) -> str:
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
