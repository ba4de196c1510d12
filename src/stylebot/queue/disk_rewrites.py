"""Redis's files on disk after an erasure: deleted keys stay in them until rewritten.

Two files may hold them: the append-only file (rewritten by BGREWRITEAOF,
`stylebot.queue.forgetting.rewrite_append_only_file`) and, when snapshots are on, the
RDB dump (`save_snapshot_again`: BGSAVE after the rewrite). Each rewrite forks Redis
and writes its whole data set, so erasures must not be a way to keep Redis forking:
`DiskRewrites` starts at most one every `min_interval_s`; one asked for meanwhile runs
when the interval is over, covering every erasure before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stylebot.queue.forgetting import rewrite_append_only_file

log = logging.getLogger(__name__)

# At most one rewrite of Redis's files this often, per front end.
MIN_REWRITE_INTERVAL_S = 30.0
# How long a snapshot waits for one already running (which started before the deletes).
_SAVE_WAIT_S = 60.0


async def snapshots_enabled(redis: Redis) -> bool:
    """Whether Redis writes RDB snapshots (`save` rules). A Redis that will not say (a
    managed one may refuse CONFIG) is taken to: an extra save costs less than a kept one."""
    try:
        rules = (await redis.config_get("save")).get("save", "")
    except ResponseError:
        return True
    return bool(rules.strip())


async def save_snapshot_again(redis: Redis) -> bool:
    """BGSAVE after our deletes, so the dump on disk no longer holds them; after an AOF
    rewrite under way (SCHEDULE). A save already running snapshotted the data before
    the deletes: wait for it first. Returns whether a save was asked for."""
    if not await snapshots_enabled(redis):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SAVE_WAIT_S
    while int((await redis.info("persistence")).get("rdb_bgsave_in_progress", 0)):
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
    await redis.bgsave(schedule=True)
    return True


class DiskRewrites:
    """Rewrites of Redis's files after erasures, at most one per `min_interval_s`."""

    def __init__(self, redis: Redis, min_interval_s: float = MIN_REWRITE_INTERVAL_S) -> None:
        self.redis = redis
        self.min_interval_s = min_interval_s
        self._last_started: float | None = None
        self._waiting: asyncio.Task[None] | None = None
        self._failure_logged = False

    async def request(self) -> None:
        """Rewrite now if none ran lately; else make sure one runs once the interval is
        over (it starts after this call, so it covers what was deleted before it)."""
        if self._waiting is not None and not self._waiting.done():
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last_started is None or now - self._last_started >= self.min_interval_s:
            await self._rewrite()
            return
        delay = self._last_started + self.min_interval_s - now
        self._waiting = asyncio.create_task(self._rewrite_after(delay), name="redis-rewrite")

    async def close(self) -> None:
        """A rewrite still waiting runs now: it may be the erasure's only one."""
        waiting, self._waiting = self._waiting, None
        if waiting is None or waiting.done():
            return
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await self._rewrite()

    async def _rewrite_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        # No longer waiting: a request from now on comes after this rewrite's snapshot.
        self._waiting = None
        await self._rewrite()

    async def _rewrite(self) -> None:
        """Best effort: a Redis that refuses (a managed one may) keeps the data on its
        disk until its own next rewrite; said once, not on every erasure."""
        self._last_started = asyncio.get_running_loop().time()
        try:
            await rewrite_append_only_file(self.redis)
            await save_snapshot_again(self.redis)
        except Exception as exc:
            if not self._failure_logged:
                self._failure_logged = True
                log.warning(
                    "Redis did not rewrite its files after an erasure (%r): erased jobs "
                    "stay in its append-only file or snapshot until it next rewrites them",
                    exc,
                )
