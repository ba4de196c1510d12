"""A worker stores a job's images at once: each put waits on its own fsyncs, so one by
one a four-image job waited for four of them in turn (issue 19). Real directory store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.support.overlapping_blobs import OverlapNotingBlobStore

from stylebot.queue.job_bodies import store_together


async def test_a_jobs_images_are_stored_at_once_and_keyed_in_order(tmp_path: Path) -> None:
    store = OverlapNotingBlobStore(tmp_path / "blobs")
    pngs = [f"image {n}".encode() for n in range(4)]

    keys = await store_together(store, pngs)

    assert keys == [hashlib.sha256(png).hexdigest() for png in pngs]
    assert [await store.get(key) for key in keys] == pngs
    assert store.most_at_once == 4


async def test_a_failed_put_is_raised_once_every_put_is_over(tmp_path: Path) -> None:
    # A file where the blobs' directory would go: every write fails, for real.
    (tmp_path / "blobs").write_text("not a directory")
    store = OverlapNotingBlobStore(tmp_path / "blobs")

    with pytest.raises(NotADirectoryError):
        await store_together(store, [b"one", b"two"])

    assert store.in_flight == 0
