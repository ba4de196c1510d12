"""The worker's copies of style weights and pictures: fetched once, checked on every use."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from tests.support.damage import flip_byte
from tests.support.tiny_styles import cached_copy

from stylebot.engine.worker_cache import IN_USE_S, BlobCache
from stylebot.queue.damaged_inputs import DamagedInput, fetch_source_picture, fetch_style_weights
from stylebot.storage.blobs import LocalBlobStore


async def test_a_damaged_copy_is_never_handed_out_but_fetched_again(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    cache = BlobCache(tmp_path / "cache")
    data = os.urandom(200_000)
    key = await store.put(data)
    fetched = await fetch_style_weights(store, cache, "loras", key, 1, "ink")
    assert fetched.path.read_bytes() == data
    flip_byte(fetched.path)
    assert cache.intact("loras", key) is None
    assert not fetched.path.exists()  # gone rather than loaded later
    again = await fetch_style_weights(store, cache, "loras", key, 1, "ink")
    assert again.path.read_bytes() == data


async def test_an_intact_copy_is_used_without_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    cache = BlobCache(tmp_path / "cache")
    data = b"weights" * 1000
    key = await store.put(data)
    first = await fetch_source_picture(store, cache, key)
    before = os.stat(first.path)
    await store.delete(key)
    second = await fetch_source_picture(store, cache, key)
    assert os.stat(second.path).st_ino == before.st_ino  # not written again
    assert second.path.read_bytes() == data


async def test_two_jobs_fetching_the_same_style_at_once_both_get_it(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    cache = BlobCache(tmp_path / "cache")
    data = os.urandom(3_000_000)
    key = await store.put(data)
    fetched = await asyncio.gather(
        *(fetch_style_weights(store, cache, "loras", key, 1, "ink") for _ in range(4))
    )
    assert {blob.path for blob in fetched} == {cache.path("loras", key)}
    assert cache.path("loras", key).read_bytes() == data
    assert not list((tmp_path / "cache").rglob("*.partial"))


async def test_a_damaged_blob_in_the_store_leaves_nothing_on_the_worker(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    cache = BlobCache(tmp_path / "cache")
    key = await store.put(b"weights" * 1000)
    flip_byte(store.path(key))
    with pytest.raises(DamagedInput, match="style 7's weights are damaged"):
        await fetch_style_weights(store, cache, "loras", key, 7, "ink")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_a_copy_a_job_holds_is_not_evicted_for_size_however_long_it_waits(
    tmp_path: Path,
) -> None:
    cache = BlobCache(tmp_path / "cache", max_bytes=150)
    held = cached_copy(cache, "loras", b"x" * 100, "1" * 64)
    idle = cached_copy(cache, "loras", b"y" * 100, "2" * 64)
    long_ago = time.time() - IN_USE_S - 60
    for blob in held, idle:
        os.utime(blob.path, (long_ago, long_ago))
    with cache.pinned([held]):  # its job waits for the device
        cached_copy(cache, "embeddings", b"z" * 100, "3" * 64)
        assert held.path.exists()
        assert not idle.path.exists()
    os.utime(held.path, (long_ago, long_ago))
    cached_copy(cache, "embeddings", b"w" * 100, "4" * 64)
    assert not held.path.exists()  # released: an old copy like any other


async def test_a_copy_checked_once_is_not_hashed_again_until_it_changes(tmp_path: Path) -> None:
    """Each generation in a style asks for its copy: an unchanged one is not read whole
    again (an SDXL style is ~200 MB). A write changes its mtime, and it is hashed again."""
    store = LocalBlobStore(tmp_path / "blobs")
    cache = BlobCache(tmp_path / "cache")
    data = os.urandom(100_000)
    key = await store.put(data)
    copy = (await fetch_style_weights(store, cache, "loras", key, 1, "ink")).path
    assert cache.use("loras", key) == copy  # the engine marks it used: still checked
    # Changed behind the cache's back with its identity kept (size, inode, mtime): not
    # hashed again, so it is handed out as it is. That is the trade made.
    before = os.stat(copy)
    flip_byte(copy)
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.intact("loras", key) is not None
    # Any ordinary write moves the mtime: hashed again, and the damage found.
    flip_byte(copy, offset=0)
    assert cache.intact("loras", key) is None
    assert not copy.exists()
