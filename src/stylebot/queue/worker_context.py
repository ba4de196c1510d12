"""What a worker's jobs share, built once at start-up: `WorkerContext`.

The engine (base pipeline loaded once and kept), the one thread that touches the
device, the blob store, the event publisher, the checkpoint store and the jobs
running (for a shutdown to stop, `running_jobs`). The worker
never opens the database: it reads blobs named in the payload, writes result
blobs, and reports through events and its return value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from stylebot.config import Settings
from stylebot.queue.cache_revocation import CacheRevocationWatch
from stylebot.queue.events import EventPublisher
from stylebot.queue.fresh_blobs import with_fresh_copies
from stylebot.queue.recovery import CheckpointStore
from stylebot.queue.running_jobs import RunningJobs
from stylebot.queue.scheduler import DeviceScheduler
from stylebot.queue.worker_announcement import WorkerSnapshot, worker_snapshot
from stylebot.queue.worker_presence import WorkerPresence, this_worker_id
from stylebot.storage.blob_storage import BlobStorage, open_blob_store

if TYPE_CHECKING:  # torch: imported where the engine is built, and only there
    from stylebot.engine.runtime import StyleEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    redis: Redis
    # Tests hand in a stand-in with only the methods their jobs reach.
    engine: StyleEngine
    device: DeviceScheduler
    blobs: BlobStorage
    events: EventPublisher
    checkpoints: CheckpointStore
    worker_id: str
    presence: WorkerPresence
    cache_revocations: CacheRevocationWatch | None
    # What a shutdown stops, and what it lets finish.
    running_jobs: RunningJobs


async def start_worker_context(
    settings: Settings,
    redis: Redis,
    engine: StyleEngine | None = None,
    activity: WorkerSnapshot = lambda: ((), False),
) -> WorkerContext:
    """Load the engine (unless one is given), start watching cache revocations and
    announcing this worker's presence (`activity`: its jobs and whether it drains)."""
    device = DeviceScheduler()
    # Small blobs (results, previews) also go to Redis for the front end to take.
    blobs = with_fresh_copies(open_blob_store(settings), redis, leaves_copies=True)
    worker_id = this_worker_id()
    presence = WorkerPresence(redis, worker_id)
    watch: CacheRevocationWatch | None = None
    try:
        if engine is None:
            engine = await device.run(lambda: _load_engine(settings))
        watch = await _watch_cache_revocations(redis, engine, device)
        presence.announcement = worker_snapshot(
            worker_id, engine, settings.model, settings.base_model_family, activity
        )
        await presence.start()
    except BaseException:  # no context to stop later: stop what started here
        if watch is not None:
            await watch.stop()
        await asyncio.to_thread(device.shutdown)
        raise
    log.info("worker ready")
    return WorkerContext(
        settings=settings,
        redis=redis,
        engine=engine,
        device=device,
        blobs=blobs,
        events=EventPublisher(redis),
        checkpoints=CheckpointStore(redis, blobs),
        worker_id=worker_id,
        presence=presence,
        cache_revocations=watch,
        running_jobs=RunningJobs(),
    )


async def stop_worker_context(context: WorkerContext) -> None:
    if context.cache_revocations is not None:
        await context.cache_revocations.stop()
    # Off the loop: a training run saves a checkpoint through it on the way out.
    await asyncio.to_thread(context.device.shutdown)
    # Last: until here the worker is alive, announced as draining.
    await context.presence.stop()


def _load_engine(settings: Settings) -> StyleEngine:
    from stylebot.engine.runtime import StyleEngine  # torch: only workers pay for it
    from stylebot.provenance.signing import signing_identity_for

    return StyleEngine(
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
        quantization=settings.base_quantization,
        few_step=settings.few_step_model,
        lora_hotswap=settings.lora_hotswap,
        lora_hotswap_rank=settings.lora_hotswap_rank,
        max_image_pixels=settings.max_upload_pixels,
        cache_max_bytes=settings.worker_cache_max_bytes,
        clip_model=settings.clip_model,
        captioner=settings.captioner,
        controlnets=settings.controlnets,
        depth_estimator=settings.depth_estimator or "",
    )


async def _watch_cache_revocations(
    redis: Redis, engine: StyleEngine, device: DeviceScheduler
) -> CacheRevocationWatch | None:
    """Deleted styles' weights leave this worker's disk: those deleted while it was
    away now, later ones as they come. None for an engine without a cache (tests)."""
    cache = getattr(engine, "cache", None)
    if cache is None:
        return None

    async def unload(keys: Sequence[str]) -> int:
        # Between jobs, on the device thread: a job may be using the pipeline.
        return int(await device.run(lambda: engine.unload_blobs(keys)))

    has_unload = hasattr(engine, "unload_blobs")
    watch = CacheRevocationWatch(redis, cache, unload=unload if has_unload else None)
    await watch.start()
    return watch
