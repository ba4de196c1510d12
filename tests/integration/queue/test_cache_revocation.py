"""Workers' disk copies of deleted styles' weights go: on the real embedded Redis, a
worker that starts after the deletion drops its stale copy, a running one drops a copy
revoked while it runs, and copies of other styles stay. The cache is bounded too."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from tests.support.tiny_styles import cached_copy

from stylebot.engine.worker_cache import IN_USE_S, BlobCache, RevokedBlobError
from stylebot.queue.cache_revocation import CacheRevocationWatch
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.forgetting import REVOCATION_KEEP_S
from stylebot.queue.keys import REVOKED_BLOBS_KEY

DELETED = "a" * 64
KEPT = "b" * 64
LATER = "c" * 64


def used_ago(path: Path, seconds: float) -> None:
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


async def test_a_worker_that_starts_after_the_deletion_drops_its_stale_copy(
    redis: ArqRedis, tmp_path: Path
) -> None:
    # The worker cached two styles, then went offline; one style was deleted meanwhile.
    cache = BlobCache(tmp_path / "cache")
    deleted = cached_copy(cache, "loras", b"weights of the deleted style", DELETED).path
    embedding = cached_copy(cache, "embeddings", b"its embedding", DELETED).path
    kept = cached_copy(cache, "loras", b"weights of another style", KEPT).path
    await ArqJobQueue(redis).revoke_blobs([DELETED])

    watch = CacheRevocationWatch(redis, cache, poll_s=0.05)
    await watch.start()  # what the worker does at start
    try:
        assert not deleted.exists()
        assert not embedding.exists()
        assert kept.exists()

        # While it runs: a later deletion reaches it within a poll or two.
        later = cached_copy(cache, "loras", b"weights of a style deleted later", LATER).path
        await ArqJobQueue(redis).revoke_blobs([LATER])
        for _poll in range(250):
            if not later.exists():
                break
            await asyncio.sleep(0.02)
        assert not later.exists()
        assert kept.exists()
    finally:
        await watch.stop()


async def test_copies_older_than_the_kept_revocations_go_at_start_and_old_records_expire(
    redis: ArqRedis, tmp_path: Path
) -> None:
    """Revocations are kept REVOCATION_KEEP_S; a copy unused for longer may have had its
    revocation forgotten, so it goes at start without looking."""
    cache = BlobCache(tmp_path / "cache")
    old = cached_copy(cache, "loras", b"not used for a long time", KEPT).path
    used_ago(old, REVOCATION_KEEP_S + 3600)
    recent = cached_copy(cache, "loras", b"used today", LATER).path
    # A revocation record older than the limit is trimmed by the next revocation.
    await redis.zadd(REVOKED_BLOBS_KEY, {"0" * 64: 1})
    await ArqJobQueue(redis).revoke_blobs([DELETED])
    assert [m.decode() for m in await redis.zrange(REVOKED_BLOBS_KEY, 0, -1)] == [DELETED]

    watch = CacheRevocationWatch(redis, cache)
    await watch.start()
    await watch.stop()
    assert not old.exists()
    assert recent.exists()


def test_the_cache_keeps_under_its_size_dropping_the_least_recently_used(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=250)
    first = cached_copy(cache, "loras", b"x" * 100, "1" * 64).path
    second = cached_copy(cache, "loras", b"x" * 100, "2" * 64).path
    used_ago(first, IN_USE_S + 20)
    used_ago(second, IN_USE_S + 10)
    assert cache.use("loras", "1" * 64) == first  # used again: now the most recent

    third = cached_copy(cache, "embeddings", b"x" * 100, "3" * 64).path
    assert first.exists()
    assert not second.exists()  # least recently used
    assert third.exists()
    assert cache.total_bytes() == 200
    # Files in use (stored or used within IN_USE_S) stay even over the limit.
    fourth = cached_copy(cache, "loras", b"x" * 100, "4" * 64).path
    assert {first.exists(), third.exists(), fourth.exists()} == {True}


async def test_a_job_that_read_the_weights_before_the_deletion_cannot_cache_them_after(
    redis: ArqRedis, tmp_path: Path
) -> None:
    cache = BlobCache(tmp_path / "cache")
    cached_copy(cache, "loras", b"weights of the deleted style", DELETED)
    await ArqJobQueue(redis).revoke_blobs([DELETED])
    watch = CacheRevocationWatch(redis, cache, poll_s=0.05)
    await watch.start()
    try:
        # The job read the blob before the deletion; it stores it after the drop.
        with pytest.raises(RevokedBlobError):
            cached_copy(cache, "loras", b"weights of the deleted style", DELETED)
        with pytest.raises(RevokedBlobError):
            cached_copy(cache, "embeddings", b"its embedding", DELETED)
        assert not list((tmp_path / "cache").rglob("*.partial"))  # the downloads went too
        assert not cache.path("loras", DELETED).exists()
        assert not cache.path("embeddings", DELETED).exists()
        assert cached_copy(cache, "loras", b"weights of another style", KEPT).path.exists()
    finally:
        await watch.stop()


async def test_a_revocation_that_lands_late_with_an_earlier_time_is_not_skipped(
    redis: ArqRedis, tmp_path: Path
) -> None:
    """Two front ends: one's revocation is timed before the other's but written after
    a worker's poll saw the later one (or Redis's clock stepped back)."""
    cache = BlobCache(tmp_path / "cache")
    late = cached_copy(cache, "loras", b"weights revoked by the slower front end", LATER).path
    await ArqJobQueue(redis).revoke_blobs([DELETED])
    watch = CacheRevocationWatch(redis, cache, poll_s=0.05)
    await watch.start()
    try:
        [(_, seen)] = await redis.zrange(REVOKED_BLOBS_KEY, 0, -1, withscores=True)
        await redis.zadd(REVOKED_BLOBS_KEY, {LATER: int(seen) - 2000})
        for _poll in range(250):
            if not late.exists():
                break
            await asyncio.sleep(0.02)
        assert not late.exists()
    finally:
        await watch.stop()
