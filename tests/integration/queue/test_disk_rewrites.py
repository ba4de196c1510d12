"""Erasures rewrite Redis's files, but no faster than one rewrite per interval, and a
snapshot on disk (RDB) loses erased data too: on the real embedded Redis."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from arq.connections import ArqRedis
from tests.support.leftovers import files_containing

from stylebot.queue.client import ArqJobQueue


async def rewrites_started(redis: ArqRedis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_bgrewriteaof", {}).get("calls", 0))


async def files_written(redis: ArqRedis) -> None:
    """Until no rewrite or save runs, nor is scheduled, and the last ones went well."""
    async with asyncio.timeout(30):
        while True:
            info = await redis.info("persistence")
            busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
            if not any(int(info.get(flag, 0)) for flag in busy):
                assert info["aof_last_bgrewrite_status"] == "ok", info
                assert info["rdb_last_bgsave_status"] == "ok", info
                return
            await asyncio.sleep(0.05)


async def rewrites_reach(redis: ArqRedis, count: int, within_s: float) -> float:
    """Seconds until `count` rewrites have started (fails after `within_s`)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with asyncio.timeout(within_s):
        while True:
            if await rewrites_started(redis) >= count:
                break
            await asyncio.sleep(0.05)
    return loop.time() - began


async def test_many_erasures_make_one_rewrite_now_and_one_after_the_interval(
    redis: ArqRedis,
) -> None:
    # An interval far longer than five erasures take, even on a loaded machine.
    interval_s = 3.0
    queue = ArqJobQueue(redis, min_rewrite_interval_s=interval_s)
    await redis.config_resetstat()
    loop = asyncio.get_running_loop()
    burst_began = loop.time()
    for _erasure in range(5):
        await queue.erase_from_disk()
    burst_s = loop.time() - burst_began
    assert burst_s < interval_s / 2, "the machine is too slow for this test's interval"
    assert await rewrites_started(redis) == 1
    # The ones asked for meanwhile: one rewrite, once the interval is over, not before.
    waited_s = await rewrites_reach(redis, 2, within_s=interval_s + 10)
    assert burst_s + waited_s >= interval_s - 0.5
    await asyncio.sleep(0.5)
    assert await rewrites_started(redis) == 2

    # A rewrite still waiting when the front end stops runs before it goes.
    await files_written(redis)
    await asyncio.sleep(interval_s)
    await queue.erase_from_disk()  # the interval is over: at once
    await queue.erase_from_disk()  # waits
    assert await rewrites_started(redis) == 3
    await queue.close()
    assert await rewrites_started(redis) == 4


async def test_an_erasure_also_rewrites_the_snapshot_when_redis_keeps_one(
    redis: ArqRedis,
) -> None:
    token = secrets.token_hex(8)
    # Snapshots on, as in a distribution's redis.conf; uncompressed, so a search finds it.
    await redis.config_set("save", "3600 1")
    await redis.config_set("rdbcompression", "no")
    await redis.set("stylebot:erased-job", f"a prompt with {token}")
    await redis.bgsave()
    await files_written(redis)
    config = await redis.config_get("dir")
    data_dir = Path(config["dir"])
    needle = [token.encode()]
    assert files_containing(data_dir, needle) != {}

    await redis.delete("stylebot:erased-job")
    await ArqJobQueue(redis).erase_from_disk()
    await files_written(redis)

    assert files_containing(data_dir, needle) == {}
