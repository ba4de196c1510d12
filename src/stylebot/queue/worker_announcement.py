"""What a worker tells the others about itself: its presence key's value.

A worker's presence key (`stylebot.queue.worker_presence`) is its heartbeat: renewed
every few seconds, gone a TTL after the worker is (SIGKILL, a lost host). Its value
announces the worker: host, device (the GPU's name and memory, or "cpu"), model
family, base model, stylebot version, start time, the jobs it runs now, and whether
it is draining (SIGTERM: finishing or handing back its jobs, taking no new ones).
`stylebot status`, the metrics and `/admin queue` list the live workers from these
keys alone, so a worker on a rented GPU shows up by starting and disappears by
stopping, with nothing to register.

The value is JSON (`LiveWorker` of the core, which `/admin queue` shows); a key
holding arq-era b"1" (a worker older than announcements) is read as a worker with
nothing announced.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from redis.asyncio import Redis

from stylebot.bot.core.admin_ports import LiveWorker
from stylebot.queue.keys import presence_key
from stylebot.redis_replies import list_reply

if TYPE_CHECKING:  # torch: imported where the engine is built, and only there
    from stylebot.engine.runtime import StyleEngine

_PRESENCE_PREFIX = presence_key("")


def _version() -> str:
    from stylebot.engine.lora_files import stylebot_version  # one place reads it

    return stylebot_version()


WorkerSnapshot = Callable[[], tuple[tuple[str, ...], bool]]
"""What the worker is doing now: (running job ids, draining)."""


def running_jobs(tasks: Mapping[str, asyncio.Task[Any]]) -> tuple[str, ...]:
    """The ids of an arq worker's jobs whose tasks have not ended."""
    return tuple(sorted(job_id for job_id, task in tasks.items() if not task.done()))


def _device(engine: StyleEngine) -> tuple[str, int | None]:
    """The engine's device: a CUDA GPU's name and memory, else its type ("cpu"). Read
    with getattr: tests hand the worker stand-ins without a pipeline."""
    kind = str(getattr(engine, "device_type", "cpu"))
    if kind != "cuda":
        return kind, None
    import torch  # a worker with a CUDA engine has it loaded already

    index = torch.cuda.current_device()
    properties = torch.cuda.get_device_properties(index)
    return str(properties.name), int(properties.total_memory)


def _family(engine: StyleEngine, configured: str) -> str:
    pipeline = getattr(engine, "pipeline", None)
    if pipeline is None:
        return configured
    from stylebot.engine.models import model_family

    return str(model_family(pipeline))


def worker_snapshot(
    worker_id: str,
    engine: StyleEngine,
    base_model: str,
    configured_family: str,
    activity: WorkerSnapshot,
) -> Callable[[], LiveWorker]:
    """A function giving this worker's announcement as of now; what does not change
    (device, family, version, start) is read once, here."""
    device, memory = _device(engine)
    family = _family(engine, configured_family)
    version = _version()
    started = datetime.now(UTC)
    host = socket.gethostname()
    model = Path(base_model.rstrip("/\\")).name if os.path.exists(base_model) else base_model

    def now() -> LiveWorker:
        jobs, draining = activity()
        return LiveWorker(
            worker_id=worker_id,
            host=host,
            device=device,
            gpu_memory_bytes=memory,
            family=family,
            base_model=model,
            version=version,
            started_at=started,
            jobs=jobs,
            draining=draining,
        )

    return now


def announcement_json(worker: LiveWorker) -> bytes:
    data = {
        "id": worker.worker_id,
        "host": worker.host,
        "device": worker.device,
        "gpu_memory_bytes": worker.gpu_memory_bytes,
        "family": worker.family,
        "base_model": worker.base_model,
        "version": worker.version,
        "started_at": worker.started_at.isoformat(),
        "jobs": list(worker.jobs),
        "state": "draining" if worker.draining else "serving",
    }
    return json.dumps(data, separators=(",", ":")).encode()


def parse_announcement(worker_id: str, raw: bytes | str | None) -> LiveWorker | None:
    """The announcement in a presence key's value; None when the key is gone. A value
    that is not one (an older worker's b"1") gives a worker with nothing known."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        data = {}
    try:
        started = datetime.fromisoformat(str(data.get("started_at")))
    except ValueError:
        started = datetime.fromtimestamp(0, UTC)
    memory = data.get("gpu_memory_bytes")
    return LiveWorker(
        worker_id=worker_id,
        host=str(data.get("host", "?")),
        device=str(data.get("device", "?")),
        gpu_memory_bytes=memory if isinstance(memory, int) else None,
        family=str(data.get("family", "?")),
        base_model=str(data.get("base_model", "?")),
        version=str(data.get("version", "?")),
        started_at=started,
        jobs=tuple(str(job) for job in data.get("jobs", ()) if isinstance(job, str)),
        draining=data.get("state") == "draining",
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_live_workers(client: redis.Redis) -> list[LiveWorker]:
    """The live workers, by id (status, metrics: a synchronous client)."""
    keys = sorted(_text(k) for k in client.scan_iter(match=presence_key("*"), count=100))
    if not keys:
        return []
    values = list_reply(client.mget(keys))
    return _workers(keys, values)


async def live_workers(client: Redis) -> list[LiveWorker]:
    """The same, on the event loop (the front end's `WorkerDirectory`)."""
    keys = sorted([_text(k) async for k in client.scan_iter(match=presence_key("*"), count=100)])
    if not keys:
        return []
    return _workers(keys, list(await client.mget(keys)))


def _workers(keys: list[str], values: list[Any]) -> list[LiveWorker]:
    found = (
        parse_announcement(key.removeprefix(_PRESENCE_PREFIX), value)
        for key, value in zip(keys, values, strict=True)
    )
    return [worker for worker in found if worker is not None]


class RedisWorkerDirectory:
    """The core's `WorkerDirectory` port on the front end's Redis."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def live_workers(self) -> list[LiveWorker]:
        return await live_workers(self.client)
