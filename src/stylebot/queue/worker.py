"""The GPU worker: an arq Worker that starts jobs in fair order (`StyleWorker`).

What its jobs do is in `job_bodies`; a job's lease, time limit, cancel, shutdown
and failure in `job_lifecycle`; what the jobs share in `worker_context`. It
extends arq's internals, pinned (tests/integration/queue/test_arq_contract.py).

Over 400 lines because `StyleWorker`'s overrides of arq's `Worker` (start in fair order,
finish, fail, stop on a signal) share one state, the jobs it has read, claimed and
announced, and are checked against arq together; all that stands alone is in the
modules above.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from arq.utils import timestamp_ms
from arq.worker import Function, func

from stylebot.config import Settings
from stylebot.logs import bind_job_context
from stylebot.metrics import observed_job
from stylebot.queue.connection import (
    deserialize_job,
    queued_job_ttl_text,
    redis_settings,
    serialize_job,
)
from stylebot.queue.embedded_keeper import EmbeddedRedisKeeper
from stylebot.queue.fairness import LANES, Lane, Turn, lane_of, lanes_in_fair_order
from stylebot.queue.forgetting import result_without_arguments
from stylebot.queue.job_bodies import JOB_BODIES, JobBody, max_batch_size
from stylebot.queue.job_lifecycle import report_end, time_limit_s
from stylebot.queue.keys import (
    QUEUE_NAME,
    WAKE_KEY,
    arq_job_key,
    arq_retry_key,
    job_end_key,
    turns_key,
    worker_health_key,
)
from stylebot.queue.outage_worker import OutageTolerantWorker
from stylebot.queue.payloads import JobEvent, JobKind
from stylebot.queue.recovery import earlier_end
from stylebot.queue.redis_endpoint import RedisEndpoint
from stylebot.queue.running_jobs import arq_time_limit_s
from stylebot.queue.training_switch import training_paused
from stylebot.queue.turns import claim, drop_turn, queue_turn_drop, queue_version, read_turns
from stylebot.queue.worker_announcement import running_jobs
from stylebot.queue.worker_context import WorkerContext, start_worker_context, stop_worker_context
from stylebot.queue.worker_presence import this_worker_id
from stylebot.redis_replies import awaited

if TYPE_CHECKING:
    from stylebot.engine.runtime import StyleEngine

log = logging.getLogger(__name__)

QUEUE_READ_LIMIT = 1000
# Reads of the queue per poll while jobs keep arriving (each new job means a
# fresh read, so none is passed over); then the next poll goes on.
QUEUE_READS_PER_POLL = 3
# How long an idle worker waits for a wake before it looks at the queue anyway.
WAKE_WAIT_S = 0.5


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

    Its jobs share a `WorkerContext`, built when the worker starts; `engine`, if
    given, is used instead of loading one (tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: StyleEngine | None = None,
        redis_keeper: EmbeddedRedisKeeper | None = None,
        **arq_options: Any,
    ) -> None:
        self.settings = settings
        self._engine = engine
        self._context: WorkerContext | None = None
        super().__init__(
            functions=[self._arq_function(kind, body) for kind, body in JOB_BODIES.items()],
            queue_name=QUEUE_NAME,
            on_startup=self._start,
            on_shutdown=self._stop,
            job_serializer=serialize_job,
            job_deserializer=deserialize_job,
            redis_keeper=redis_keeper,
            **arq_options,
        )
        # arq claims a job for its longest timeout (hours, for training) plus 10 s;
        # claim it for one lease instead, which the job renews while it runs (see
        # stylebot.queue.recovery), so a killed worker's job is retried soon.
        self.in_progress_timeout_s = settings.job_lease_s
        # What the jobs queued or running here are, read once per job.
        self._queued: dict[str, _QueuedJob] = {}
        # Jobs this worker claimed (started, or found started elsewhere).
        self._claimed: set[str] = set()
        self._announcing: asyncio.Future[None] | None = None  # held: see handle_sig

    @property
    def context(self) -> WorkerContext:
        if self._context is None:
            raise RuntimeError("the worker has not started")
        return self._context

    def _current_engine(self) -> StyleEngine | None:
        return None if self._context is None else self._context.engine

    async def _start(self, ctx: dict[str, Any]) -> None:
        # Announced: the jobs running here, and whether it drains (stopping).
        activity = lambda: (running_jobs(self.tasks), self.stopping)  # noqa: E731
        self._context = await start_worker_context(self.settings, self.pool, self._engine, activity)

    async def _stop(self, ctx: dict[str, Any]) -> None:
        if self._context is not None:
            await stop_worker_context(self._context)

    def _arq_function(self, kind: JobKind, body: JobBody) -> Function:
        async def run(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
            return await body(self.context, payload)

        observed = observed_job(run, kind, engine=self._current_engine)
        return func(
            observed,  # type: ignore[arg-type]  # arq's WorkerCoroutine wants *args; it passes the payload
            name=kind,
            timeout=arq_time_limit_s(time_limit_s(self.settings, kind)),
        )

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
            kept = result_without_arguments(result_data)
            if finish and kept is not None and not await self.pool.exists(arq_job_key(job_id)):
                # Forgotten while it ran (its owner erased it): arq's record of it must
                # not bring its result back (a caption job's captions, images' keys).
                kept = None
            await super(StyleWorker, self).finish_job(
                job_id,
                finish,
                kept,
                result_timeout_s,
                keep_result_forever,
                incr_score,
                keep_in_progress,
            )
            if finish:  # not finished: arq retries it, in its turn
                async with self.pool.pipeline(transaction=True) as pipe:
                    queue_turn_drop(pipe, job_id)
                    # arq's result is its record now, and no run of it can follow.
                    pipe.delete(job_end_key(job_id))
                    await pipe.execute()

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
            await self.pool.delete(job_end_key(job_id))  # told: arq's record is the rest
        except Exception:
            log.exception("could not report the failure of job %s", job_id)

    async def _why_failed(self, job_id: str) -> tuple[JobKind, str]:
        """The job's kind and what its user is told of why arq failed it."""
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.get(arq_job_key(job_id))
            pipe.get(arq_retry_key(job_id))
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
        context = self.context
        # In arq's task, which a shutdown does not stop: it gives up waiting for Redis.
        stopping = lambda: self.stopping  # noqa: E731
        end = await earlier_end(self.pool, job_id)
        if end is not None:
            # An earlier run finished it and died before arq recorded that: its
            # result is there (a style trained, images made), so report it, not a failure.
            await report_end(context, end, give_up=stopping)
            return
        if kind == "train":
            # Before the user is told: once they read "failed", nothing of it is kept.
            await context.checkpoints.discard(job_id)
        failed = JobEvent(job_id, kind, "failed", error=error)
        await context.events.publish(failed, give_up=stopping)

    def handle_sig(self, signum: int) -> None:
        """arq's stop handler, except that the jobs stop as `RunningJobs` says.

        arq cancels its own task around each job, at any moment: once a job had
        returned, that put a finished job back on the queue, to be done and told
        again. Here a job's own task is cancelled, once, unless the job only records
        its result: it stops at its next step and, training, saves a checkpoint
        before arq hands it back to the queue (see `job_lifecycle._within_limits`).
        """
        sig = signal.Signals(signum)
        self.stopping = True
        self.stop_running_jobs(f"shutdown on {sig.name}")
        if self.main_task is not None:
            self.main_task.cancel()
        if self._context is not None:
            # Seen at once as draining (`stylebot status`, /admin queue), until it exits.
            self._announcing = asyncio.ensure_future(self._context.presence.announce_now())
        if self.on_stop is not None:
            self.on_stop(sig)

    def stop_running_jobs(self, why: str) -> None:
        if self._context is None:
            return  # not started: no job runs yet
        stopped, recording = self._context.running_jobs.stop_all()
        log.info(
            "%s: %d jobs running stop at their next step, %d finish recording their results",
            why,
            stopped,
            recording,
        )

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
            payloads = await self.pool.mget([arq_job_key(job_id) for job_id in missing])
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
    engine: StyleEngine | None = None,
    redis_keeper: EmbeddedRedisKeeper | None = None,
) -> StyleWorker:
    """A worker for these settings; `engine`: a ready one (tests); `redis_keeper`: the
    embedded Redis this process keeps, restarted if it stops."""
    return StyleWorker(
        settings,
        engine=engine,
        redis_keeper=redis_keeper,
        # The URL with the TLS files of the settings (a rediss:// REDIS_URL).
        redis_settings=redis_settings(RedisEndpoint.from_settings(settings, redis_url)),
        # Every log line of a job's task carries its id, arq's result line too.
        on_job_start=bind_job_context,
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
        keep_result=timedelta(days=1),
        # Results hold no job arguments (`result_without_arguments`), nor do logs:
        # arq's result line is off, its start line filtered (stylebot.logs).
        log_results=False,
        # One health-check key per worker, so `stylebot status` and the metrics
        # count workers; short, so a dead worker drops out within seconds.
        health_check_key=worker_health_key(this_worker_id()),
        health_check_interval=10,
    )
