"""What lets a crashed worker's job be taken up by another: lease, checkpoints, results.

arq re-runs a job whose worker died only once the job's in-progress key in
Redis expires, and arq sets that key for the longest job timeout plus 10 s: six
hours for training. A worker instead holds the key as a short *lease* that it
renews while the job runs, so a job whose worker was SIGKILLed (or lost its
host) is picked up again by any worker within one lease.

A training run's checkpoints go to the blob store (shared by the hosts of a
scaled-out deployment) and the latest one's key to Redis under the job id, so
the next attempt, on whatever host, continues from there. How a run of any job
ended is kept in Redis too, until arq has recorded the job: a run that finds it
tells that end (once) instead of doing the work a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.bot.core.errors import DamagedBlob
from stylebot.queue.connection import QUEUED_JOB_TTL_S
from stylebot.queue.keys import (
    arq_in_progress_key,
    arq_job_key,
    arq_retry_key,
    checkpoint_key,
    job_end_key,
)
from stylebot.queue.payloads import JobEvent, TrainResult
from stylebot.redis_replies import awaited
from stylebot.storage.blob_storage import BlobStorage

log = logging.getLogger(__name__)

# Kept for as long as a front end may take to come back and collect results.
# As long as a job may wait in the queue: a run re-queued and then paused keeps its checkpoint.
RECORD_TTL_S = QUEUED_JOB_TTL_S
# How soon a failed lease renewal is tried again (at most).
LEASE_RETRY_S = 1.0


class JobLease:
    """Keeps arq's in-progress key for a job alive for `lease_s` at a time.

    Renewed three times a lease, from the event loop (the device thread may be
    busy for a whole step), so only a dead or frozen worker lets it lapse. A
    failed renewal (a Redis blip) is retried after a short pause: one error
    must not end renewal for the rest of the job, or another worker runs it too.
    """

    def __init__(
        self, redis: Redis, job_id: str, lease_s: float, worker_id: str | None = None
    ) -> None:
        self.redis = redis
        self.job_id = job_id
        # Written into the lease, so the front end can tell whether its holder is alive
        # (`stylebot.queue.worker_presence`); arq itself only checks the key exists.
        self.holder = worker_id.encode() if worker_id is not None else b"1"
        self.key = arq_in_progress_key(job_id)
        self.lease_ms = max(1, int(lease_s * 1000))
        self._task: asyncio.Task[None] | None = None

    @property
    def _retry_s(self) -> float:
        # Well inside the lease, so a short blip costs no part of it.
        return min(LEASE_RETRY_S, self.lease_ms / 6000)

    async def _renew(self) -> None:
        renewed_at = time.monotonic()
        lapse_reported = False
        while True:
            attempted_at = time.monotonic()
            try:
                # pexpire, not set: once arq has finished the job and deleted the
                # key, a late renewal must not bring it back.
                if not await self.redis.pexpire(self.key, self.lease_ms):
                    # Gone while the job runs here: it lapsed during a Redis outage (or
                    # a restart lost it). Take it again unless another worker has.
                    await self._retake()
            except Exception as exc:
                if time.monotonic() - renewed_at > self.lease_ms / 1000:
                    if not lapse_reported:
                        log.error(
                            "lease of job %s not renewed for over %g s (%r): "
                            "another worker may take the job",
                            self.job_id,
                            self.lease_ms / 1000,
                            exc,
                        )
                        lapse_reported = True
                else:
                    log.warning("renewing the lease of job %s failed: %r", self.job_id, exc)
                await asyncio.sleep(self._retry_s)
                continue
            renewed_at = attempted_at
            if lapse_reported:
                log.warning("lease of job %s renewed again", self.job_id)
                lapse_reported = False
            await asyncio.sleep(self.lease_ms / 3000)

    async def _retake(self) -> None:
        if await self.redis.set(self.key, self.holder, px=self.lease_ms, nx=True):
            log.warning("lease of job %s had lapsed; taken again", self.job_id)
        else:
            log.error("lease of job %s was taken by another worker meanwhile", self.job_id)

    async def __aenter__(self) -> JobLease:
        # xx: only the lease arq gave this worker, never one arq has already dropped.
        try:
            await self.redis.set(self.key, self.holder, px=self.lease_ms, xx=True)
        except ResponseError as exc:
            # Naming the holder only serves /status; a Redis that refuses SET (an ACL,
            # a full disk) still lets the lease be renewed, as before it was named.
            log.warning("lease of job %s not named after its worker: %r", self.job_id, exc)
            await self.redis.pexpire(self.key, self.lease_ms)
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop_helper(self._task, f"lease renewal of job {self.job_id}")


async def stop_helper(task: asyncio.Task[None] | None, what: str) -> None:
    """Cancel a job's helper task and wait for it, never raising its error.

    A helper (lease renewal, cancel watch) serves the job; its failure must not
    turn the job's own outcome (a finished training, say) into an error.
    """
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.warning("%s ended with an error", what, exc_info=True)


class CheckpointStore:
    """The latest checkpoint of each training job: a file streamed into the blob store,
    its key in Redis. Checkpoints move file to store and store to file, never whole in
    memory (a large model's optimiser state is gigabytes)."""

    def __init__(self, redis: Redis, blobs: BlobStorage) -> None:
        self.redis = redis
        self.blobs = blobs

    async def latest_to_file(self, job_id: str, path: Path) -> int | None:
        """Write the job's last checkpoint to `path` (checked against its key) and
        return the steps it holds; None, and no file, when there is none to use."""
        raw = await self.redis.get(checkpoint_key(job_id))
        if raw is None:
            return None
        record = json.loads(raw)
        try:
            await self.blobs.get_to_file(record["blob_key"], path)
        except KeyError:
            log.warning("checkpoint of job %s is gone from the blob store", job_id)
            return None
        except DamagedBlob as exc:  # training from the start is slower, never wrong
            log.warning("checkpoint of job %s is damaged (%s); training from step 0", job_id, exc)
            return None
        return int(record["step"])

    async def save_file(self, job_id: str, path: Path, step: int) -> None:
        """Record a newer checkpoint (the file at `path`), then drop the one it replaces.
        Nothing is kept of a job arq no longer holds: the front end forgot it meanwhile
        (`forgetting.forget_jobs`: its owner erased it; it is cancelled, and stops at its
        next step), or it expired while it waited (arq would not run it again anyway)."""
        previous = await self.redis.get(checkpoint_key(job_id))
        blob_key = await self.blobs.put_file(path)
        record = json.dumps({"blob_key": blob_key, "step": step})
        try:
            kept = await awaited(
                self.redis.eval(
                    _KEEP_CHECKPOINT,
                    2,
                    checkpoint_key(job_id),
                    arq_job_key(job_id),
                    record,
                    RECORD_TTL_S,  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
                )
            )
        except Exception:
            # Not recorded: nothing would ever name (and delete) the new blob.
            if previous is None or json.loads(previous)["blob_key"] != blob_key:
                with contextlib.suppress(Exception):
                    await self.blobs.delete(blob_key)
            raise
        if not kept:
            log.info("job %s is gone from arq (forgotten, expired): checkpoint not kept", job_id)
            await self.blobs.delete(blob_key)
            return
        if previous is not None:
            old_key = json.loads(previous)["blob_key"]
            if old_key != blob_key:
                await self.blobs.delete(old_key)

    async def discard(self, job_id: str) -> None:
        raw = await self.redis.get(checkpoint_key(job_id))
        await self.redis.delete(checkpoint_key(job_id))
        if raw is not None:
            await self.blobs.delete(json.loads(raw)["blob_key"])


@dataclass(frozen=True)
class JobEnd:
    """How an earlier run of a job ended, and whether its event reached the stream."""

    event: JobEvent
    told: bool


async def earlier_end(redis: Redis, job_id: str) -> JobEnd | None:
    """How an earlier run of the job ended, if one did and arq has not recorded it."""
    raw = await awaited(redis.hgetall(job_end_key(job_id)))
    if not raw:
        return None
    if b"event" in raw:
        event = JobEvent.from_json(raw[b"event"])
    else:  # kept by a worker older than the event field: a training's result only
        result = TrainResult.from_json(raw[b"result"])
        event = JobEvent(job_id, "train", "finished", step=result.steps, result=result.to_dict())
    return JobEnd(event, raw.get(b"reported") == b"1")


async def remember_end(redis: Redis, event: JobEvent) -> None:
    """Keep the job's finished event before telling it (`EventPublisher.publish_end`), for a
    job with work to undo in between (a training's checkpoint). Only while arq holds the
    job (one the front end forgot meanwhile, `forgetting.forget_jobs`, keeps nothing),
    and only the first end of it (a second run, the first's lease lapsed, keeps none)."""
    record = {"event": event.to_json(), "reported": "0"}
    if event.job_kind == "train" and event.result is not None:
        # What a worker older than the event field reads (a fleet upgraded host by host).
        record["result"] = TrainResult.from_dict(event.result).to_json()
    fields = [part for pair in record.items() for part in pair]
    await awaited(
        redis.eval(
            _KEEP_END,
            2,
            job_end_key(event.job_id),
            arq_job_key(event.job_id),
            RECORD_TTL_S,  # type: ignore[arg-type]  # redis-py types eval args str; any bytes/int goes
            *fields,
        )
    )


# A checkpoint's record, kept only if arq's job (KEYS[2]) is still there, in one step.
_KEEP_CHECKPOINT = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# The end record, likewise, and only the first end kept: a second run of the job (the
# first's lease lapsed) must not mark an end already told as untold.
_KEEP_END = """
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


async def give_back_try(redis: Redis, job_id: str) -> None:
    """Undo arq's count of this run of the job: it was interrupted, not failed.

    arq counts a job's runs in its retry key (`job_try`, checked against
    `max_tries`) when a run starts. A run that a worker's shutdown cut short
    goes back on the queue; it must not use up a try, or a few restarts of
    the workers would fail a job that never failed. A worker that dies
    without a shutdown (SIGKILL) cannot give its try back: that counts.
    """
    key = arq_retry_key(job_id)
    # Atomic, and never below zero: the run may have been its first.
    await awaited(
        redis.eval(
            "local n = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if n > 0 then redis.call('DECR', KEYS[1]) end return n",
            1,
            key,
        )
    )
