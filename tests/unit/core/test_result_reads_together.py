"""The front end reads a result's images at once: one by one, a four-image result waited
for four store round trips in turn (issue 19; an S3 GET is ~10 ms here). The core on its
in-memory records with a real directory blob store."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.core import person
from tests.support.overlapping_blobs import OverlapNotingBlobStore
from tests.support.picture_edits import png_bytes
from tests.support.verify_world import verify_world
from tests.unit.provenance.test_watermark import scene

from stylebot.bot.core.blobs import read_together
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.replies import ImagesReady, JobQueued
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent

ALICE = person("alice")


async def test_a_results_images_are_read_at_once(tmp_path: Path) -> None:
    store = OverlapNotingBlobStore(tmp_path / "blobs")
    world = verify_world(blobs=store)
    queued = await world.bot.handle(Imagine(ALICE, "a lighthouse", seed=1, steps=4, count=4))
    assert isinstance(queued, JobQueued), queued
    job = world.queue.generate_jobs[-1]
    pngs = [png_bytes(scene(64, 64, seed=n)) for n in range(len(job.output_ids))]
    keys = [await store.put(png) for png in pngs]
    images = tuple(
        GeneratedImage(output_id, key, job.seed + n)
        for n, (output_id, key) in enumerate(zip(job.output_ids, keys, strict=True))
    )

    [note] = await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=GenerateResult(images, 1.0).to_dict())
    )

    assert isinstance(note.reply, ImagesReady)
    assert [image.data for image in note.reply.images] == pngs  # in the result's order
    assert store.most_at_once == 4


async def test_the_first_damaged_image_is_raised_after_every_read(tmp_path: Path) -> None:
    store = OverlapNotingBlobStore(tmp_path / "blobs")
    keys = [await store.put(f"image {n}".encode()) for n in range(3)]
    store.path(keys[1]).write_bytes(b"flipped")  # damaged on disk

    with pytest.raises(DamagedBlob):
        await read_together(store, keys)

    assert store.in_flight == 0
