"""`stylebot status`: workers, the queue and running jobs, read from Redis alone.

Everything shown comes from what arq and the workers keep in Redis: the queue
(a sorted set of job ids), each job's record (`arq:job:<id>`, which names the
function, i.e. the job kind), the in-progress markers of running jobs, workers'
health-check keys, and the progress events on the events stream. It never
opens the database, so it runs next to a front end that holds it, on any host
that reaches the Redis.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from stylebot.bot.core.admin_ports import LiveWorker
from stylebot.config import Settings
from stylebot.queue.keys import (
    ARQ_HEALTH_CHECK_SUFFIX,
    EVENTS_STREAM,
    QUEUE_HEALTH_KEY,
    QUEUE_NAME,
    TRAINING_PAUSED_KEY,
    WORKER_HEALTH_PREFIX,
    arq_in_progress_key,
    arq_job_key,
    arq_retry_key,
    cancel_key,
    presence_key,
    worker_health_key,
)
from stylebot.queue.redis_endpoint import RedisEndpoint, connection_problem
from stylebot.queue.redis_socket import EmbeddedRedisError, check_socket_is_ours, socket_path_for
from stylebot.queue.worker_announcement import read_live_workers
from stylebot.queue.worker_presence import lease_holder
from stylebot.redaction import TextOutput
from stylebot.redis_replies import int_reply, list_reply, value_reply

JOB_KINDS = ("train", "generate")
# Kinds counted only when some wait: short jobs that come now and then.
OCCASIONAL_KINDS = ("caption", "compare")
# Progress of running jobs is looked up in this many of the newest events.
RECENT_EVENTS = 1000
_HEALTH_FIELD = re.compile(r"(\w+)=(\d+)")


class RedisUnavailable(RuntimeError):
    """No Redis to read; the message says what to do."""


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    kind: str
    enqueued_at: datetime | None
    starts: int


@dataclass(frozen=True)
class RunningJob:
    job_id: str
    kind: str
    step: int
    total: int
    starts: int
    # Its lease is still held, but by a worker that is gone (killed, host lost).
    worker_stopped: bool = False


@dataclass(frozen=True)
class WorkerHealth:
    name: str
    checked_at: str
    completed: int
    failed: int
    retried: int
    ongoing: int
    expires_in_s: float


@dataclass(frozen=True)
class QueueSnapshot:
    queued: tuple[QueuedJob, ...]
    running: tuple[RunningJob, ...]
    workers: tuple[WorkerHealth, ...]
    # Who paused training (an admin command), or None while training runs.
    training_paused_by: str | None = None
    # What each live worker announced (`stylebot.queue.worker_announcement`).
    live: tuple[LiveWorker, ...] = ()

    def depth(self, kind: str) -> int:
        return sum(1 for job in self.queued if job.kind == kind)

    def running_count(self, kind: str) -> int:
        return sum(1 for job in self.running if job.kind == kind)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _job_record(raw: bytes | None) -> dict[str, Any]:
    """arq's job record, JSON-encoded by stylebot's serializer; {} when gone or foreign."""
    if raw is None:
        return {}
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _latest_progress(client: redis.Redis, job_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(step, total) from the newest progress or started event of each job."""
    wanted = set(job_ids)
    progress: dict[str, tuple[int, int]] = {}
    if not wanted:
        return progress
    for _message_id, fields in list_reply(client.xrevrange(EVENTS_STREAM, count=RECENT_EVENTS)):
        raw = fields.get(b"event") or fields.get("event")
        try:
            event = json.loads(raw)
        except (TypeError, ValueError):
            continue
        job_id = event.get("job_id")
        if (
            job_id in wanted
            and job_id not in progress
            and event.get("kind")
            in (
                "progress",
                "started",
            )
        ):
            progress[job_id] = (int(event.get("step") or 0), int(event.get("total") or 0))
            if len(progress) == len(wanted):
                break
    return progress


def _workers(client: redis.Redis) -> list[WorkerHealth]:
    """Workers whose health-check key is current: one per worker when workers use
    `worker_health_key`, else arq's shared queue key (which stands for "at least one")."""
    keys = sorted(_text(k) for k in client.scan_iter(match=worker_health_key("*"), count=100))
    if not keys:
        keys = [QUEUE_HEALTH_KEY]
    workers = []
    for key in keys:
        info = value_reply(client.get(key))
        if info is None:
            continue
        text = _text(info)
        fields = {name: int(value) for name, value in _HEALTH_FIELD.findall(text)}
        name = (
            "(arq queue check)"
            if key == QUEUE_HEALTH_KEY
            else key.removeprefix(WORKER_HEALTH_PREFIX).removesuffix(ARQ_HEALTH_CHECK_SUFFIX)
        )
        workers.append(
            WorkerHealth(
                name=name,
                checked_at=text.split(" j_", 1)[0],
                completed=fields.get("j_complete", 0),
                failed=fields.get("j_failed", 0),
                retried=fields.get("j_retried", 0),
                ongoing=fields.get("j_ongoing", 0),
                expires_in_s=max(int_reply(client.pttl(key)), 0) / 1000,
            )
        )
    return workers


def read_snapshot(client: redis.Redis) -> QueueSnapshot:
    """What is queued, what runs and which workers checked in, as of now."""
    job_ids = [_text(member) for member in list_reply(client.zrange(QUEUE_NAME, 0, -1))]
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.get(arq_job_key(job_id))
        pipe.get(arq_in_progress_key(job_id))
        # arq counts each start of a job here: above 1 while running, or above 0
        # while queued, means a worker took it before and did not finish it.
        pipe.get(arq_retry_key(job_id))
        # A cancelled job stays in arq's queue until a worker drops it: not waiting.
        pipe.exists(cancel_key(job_id))
    replies = pipe.execute() if job_ids else []
    queued: list[QueuedJob] = []
    running_records: list[tuple[str, dict[str, Any]]] = []
    holders: dict[str, str] = {}
    for index, job_id in enumerate(job_ids):
        raw_record, in_progress, starts, cancelled = replies[4 * index : 4 * index + 4]
        record = _job_record(raw_record)
        record["starts"] = int(starts or 0)
        if in_progress is not None:
            running_records.append((job_id, record))
            holder = lease_holder(in_progress)
            if holder is not None:
                holders[job_id] = holder
            continue
        if cancelled:
            continue
        enqueued_ms = record.get("et")
        queued.append(
            QueuedJob(
                job_id=job_id,
                kind=str(record.get("f", "?")),
                enqueued_at=datetime.fromtimestamp(enqueued_ms / 1000, UTC)
                if isinstance(enqueued_ms, int | float)
                else None,
                starts=record["starts"],
            )
        )
    progress = _latest_progress(client, (job_id for job_id, _ in running_records))
    stopped = _held_by_stopped_workers(client, holders)
    running = tuple(
        RunningJob(
            job_id=job_id,
            kind=str(record.get("f", "?")),
            step=progress.get(job_id, (0, 0))[0],
            total=progress.get(job_id, (0, 0))[1],
            starts=record["starts"],
            worker_stopped=job_id in stopped,
        )
        for job_id, record in running_records
    )
    paused_by = value_reply(client.get(TRAINING_PAUSED_KEY))
    return QueueSnapshot(
        tuple(queued),
        running,
        tuple(_workers(client)),
        training_paused_by=_text(paused_by) if paused_by is not None else None,
        live=tuple(read_live_workers(client)),
    )


def _held_by_stopped_workers(client: redis.Redis, holders: dict[str, str]) -> set[str]:
    """Of these jobs (by the worker id their lease names), those whose worker is gone."""
    if not holders:
        return set()
    pipe = client.pipeline(transaction=False)
    for worker_id in holders.values():
        pipe.exists(presence_key(worker_id))
    present = pipe.execute()
    return {job_id for job_id, alive in zip(holders, present, strict=True) if not alive}


def progress_bar(step: int, total: int, width: int = 24) -> str:
    """`[#########---------------]  37%  9/24`; an unknown total shows as waiting."""
    if total <= 0:
        return "[" + "." * width + "]  starting"
    done = min(max(step, 0), total)
    filled = round(width * done / total)
    return f"[{'#' * filled}{'-' * (width - filled)}] {100 * done // total:3d}%  {done}/{total}"


def describe_live_worker(worker: LiveWorker, now: datetime) -> str:
    """One line: `gpu-7 (host) NVIDIA A100 80 GiB, sdxl, base-model, 0.1.0, up 5 min, serving`."""
    device = worker.device
    if worker.gpu_memory_bytes:
        device += f" {worker.gpu_memory_bytes / 1024**3:.0f} GiB"
    up = max(0, int((now - worker.started_at).total_seconds()))
    uptime = f"{up} s" if up < 120 else f"{up // 60} min" if up < 7200 else f"{up // 3600} h"
    state = "draining" if worker.draining else "serving"
    jobs = f", running {' '.join(worker.jobs)}" if worker.jobs else ""
    return (
        f"{worker.worker_id} ({worker.host}): {device}, {worker.family}, {worker.base_model}, "
        f"stylebot {worker.version}, up {uptime}, {state}{jobs}"
    )


def render_snapshot(snapshot: QueueSnapshot, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    lines = [f"Live workers ({len(snapshot.live)})"]
    lines += [f"  {describe_live_worker(worker, now)}" for worker in snapshot.live]
    lines += ["", f"Workers ({len(snapshot.workers)})"]
    if not snapshot.workers:
        lines.append("  none has checked in (is `stylebot worker` running?)")
    for worker in snapshot.workers:
        lines.append(
            f"  {worker.name:<28} checked {worker.checked_at}  done {worker.completed}"
            f"  failed {worker.failed}  retried {worker.retried}  running {worker.ongoing}"
        )
    shown = [*JOB_KINDS, *(k for k in OCCASIONAL_KINDS if snapshot.depth(k))]
    depths = ", ".join(f"{kind} {snapshot.depth(kind)}" for kind in shown)
    lines += ["", f"Queue: {len(snapshot.queued)} waiting ({depths})"]
    if snapshot.training_paused_by is not None:
        lines.append(f"  training is paused (by {snapshot.training_paused_by}); generation goes on")
    for position, job in enumerate(snapshot.queued, start=1):
        waited = (
            f"waiting {int((now - job.enqueued_at).total_seconds())} s"
            if job.enqueued_at
            else "waiting"
        )
        retry = f"  (started {job.starts}x before)" if job.starts else ""
        lines.append(f"  {position:>3}. {job.kind:<9} {job.job_id}  {waited}{retry}")
    lines += ["", f"Running ({len(snapshot.running)})"]
    for running in snapshot.running:
        lines.append(
            f"  {running.kind:<9} {running.job_id}  {progress_bar(running.step, running.total)}"
            + (f"  attempt {running.starts}" if running.starts > 1 else "")
            + ("  worker stopped: waits for another" if running.worker_stopped else "")
        )
    return "\n".join(lines)


def redis_for_status(settings: Settings) -> redis.Redis:
    """A client on the configured Redis, or on the data directory's embedded one if it is
    running. Never starts a server: with nothing running there is nothing to show."""
    if settings.redis_url:
        endpoint = RedisEndpoint.from_settings(settings)
    else:
        socket_path: Path = socket_path_for(settings.data_dir)
        try:
            check_socket_is_ours(socket_path)  # another user's server is not asked
        except EmbeddedRedisError as exc:
            raise RedisUnavailable(str(exc)) from exc
        if not socket_path.exists():
            raise RedisUnavailable(
                f"no embedded Redis is running for {settings.data_dir.resolve()} (start "
                "`stylebot run`, `console` or `worker` there), and REDIS_URL is not set"
            )
        endpoint = RedisEndpoint(f"unix://{socket_path}")
    client = endpoint.client(socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise RedisUnavailable(connection_problem(exc, endpoint)) from exc
    return client


def run_status(
    settings: Settings, out: TextOutput, *, watch_every_s: float | None = None, rounds: int = 0
) -> int:
    """Print the status once, or every `watch_every_s` seconds until Ctrl-C (or `rounds`)."""
    try:
        client = redis_for_status(settings)
    except RedisUnavailable as exc:
        print(f"stylebot status: {exc}", file=out)
        return 1
    shown = 0
    try:
        while True:
            text = render_snapshot(read_snapshot(client))
            if watch_every_s is not None and out.isatty():
                out.write("\x1b[H\x1b[2J")  # clear the screen between refreshes
            width = shutil.get_terminal_size((100, 20)).columns
            print("\n".join(line[:width] for line in text.splitlines()), file=out, flush=True)
            shown += 1
            if watch_every_s is None or (rounds and shown >= rounds):
                return 0
            print(file=out)
            time.sleep(watch_every_s)
    except KeyboardInterrupt:
        return 0
    except redis.RedisError as exc:
        print(f"stylebot status: lost Redis: {exc}", file=out)
        return 1
    finally:
        client.close()
