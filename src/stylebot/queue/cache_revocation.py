"""A worker's side of blob revocations: drop cached copies of deleted styles' weights.

The front end records revoked blob keys in Redis (`stylebot.queue.forgetting`). At
start a worker drops every revoked key it caches, and every file unused for longer
than revocations are kept (so none whose revocation was already forgotten survives);
then it polls for new revocations every `POLL_S` while it runs. Each poll asks again
for the last `OVERLAP_MS` too: scores come from Redis's clock in one step with the
record, but a clock stepped back (NTP) could still give a later revocation an earlier
score. A revoked key is refused by the cache from then on, and the engine unloads the
weights it holds in memory (`unload`, on the device thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Redis

from stylebot.engine.worker_cache import BlobCache
from stylebot.queue.forgetting import REVOCATION_KEEP_S, revoked_blobs_since

log = logging.getLogger(__name__)

# Unloads revoked blobs' weights from the engine's memory; returns how many went.
UnloadBlobs = Callable[[Sequence[str]], Awaitable[int]]


class CacheRevocationWatch:
    # Deleting a style reaches running workers within this (plus a Redis round trip).
    POLL_S = 1.0
    OVERLAP_MS = 10_000

    def __init__(
        self,
        redis: Redis,
        cache: BlobCache,
        poll_s: float = POLL_S,
        unload: UnloadBlobs | None = None,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.poll_s = poll_s
        self.unload = unload
        self._since_ms = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Apply what was revoked while this worker was away, then keep watching."""
        stale = await asyncio.to_thread(self.cache.drop_unused_for, REVOCATION_KEEP_S)
        if stale:
            log.info("dropped %d cached file(s) unused for longer than revocations are kept", stale)
        await self.catch_up()
        self._task = asyncio.create_task(self._watch(), name="cache-revocations")

    async def catch_up(self) -> int:
        """Drop the copies of blobs revoked since the last look; returns how many went."""
        since = max(0, self._since_ms - self.OVERLAP_MS) if self._since_ms else 0
        keys, latest = await revoked_blobs_since(self.redis, since)
        self._since_ms = max(self._since_ms, latest)
        if not keys:
            return 0
        new, dropped = await asyncio.to_thread(self.cache.revoke, keys)
        if dropped:
            log.info("dropped %d cached file(s) of deleted styles", dropped)
        if new and self.unload is not None:
            unloaded = await self.unload(new)
            if unloaded:
                log.info("unloaded %d adapter(s) or embedding(s) of deleted styles", unloaded)
        return dropped

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.catch_up()
            except Exception as exc:  # a Redis blip: the next poll catches up
                log.warning("reading blob revocations failed: %r", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
