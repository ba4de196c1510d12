"""Restyled, extended and repainted outputs through the real SQLite repository: their
source, strength and canvas or region survive the round trip (a re-roll does the same
again), and the source picture's blob stays while an output names it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.fakes.core import person
from tests.integration.storage.test_repository import (
    KEY_A,
    KEY_B,
    KEY_C,
    T0,
    output,
    requester,
    style_for,
    user,
)
from tests.support.verify_world import deliver, verify_world
from tests.unit.provenance.test_watermark import scene

from stylebot.bot.core.commands import (
    DeleteOutput,
    ExtendOutput,
    RerollOutput,
)
from stylebot.bot.core.model import NewJob
from stylebot.bot.core.replies import JobQueued
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")


async def test_sources_and_boxes_round_trip_and_rerolls_keep_them(tmp_path: Path) -> None:
    repo = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    blobs = LocalBlobStore(tmp_path / "blobs")
    try:
        world = verify_world(repo, blobs)
        output_id = await deliver(world, ALICE, scene(256, 256, seed=3), "a lighthouse")
        first = await repo.outputs.get_output(output_id)
        assert first is not None
        w, h = first.width, first.height
        extended = await world.bot.handle(ExtendOutput(ALICE, output_id, "zoom2"))
        assert isinstance(extended, JobQueued), extended
        job = world.queue.generate_jobs[-1]
        [record] = await repo.outputs.job_outputs(job.job_id)
        assert (record.source_output_id, record.keep_box, record.denoising_strength) == (
            output_id,
            (w // 2, h // 2, w, h),
            1.0,
        )
        again = await world.bot.handle(RerollOutput(ALICE, record.id))
        assert isinstance(again, JobQueued), again
        reroll = world.queue.generate_jobs[-1]
        assert (reroll.width, reroll.height) == (w * 2, h * 2)
        assert reroll.keep_box == (w // 2, h // 2, w, h)

    finally:
        await repo.close()


async def test_the_source_blob_stays_while_an_output_names_it(tmp_path: Path) -> None:
    repo = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    try:
        world = verify_world(repo, LocalBlobStore(tmp_path / "blobs"))
        output_id = await deliver(world, ALICE, scene(256, 256, seed=4), "a lighthouse")
        await world.bot.handle(ExtendOutput(ALICE, output_id, "square"))  # square already
        await world.bot.handle(ExtendOutput(ALICE, output_id, "portrait"))
        job = world.queue.generate_jobs[-1]
        assert job.source_key is not None
        # The source is the first output's blob: deleting the extension keeps it.
        [record] = await repo.outputs.job_outputs(job.job_id)
        await world.bot.handle(DeleteOutput(ALICE, record.id))
        assert await repo.unreferenced_blob_keys([job.source_key]) == set()
        await world.bot.handle(DeleteOutput(ALICE, output_id))
        assert await repo.unreferenced_blob_keys([job.source_key]) == {job.source_key}
    finally:
        await repo.close()


async def test_a_repaint_mask_round_trips_and_goes_with_its_outputs(tmp_path: Path) -> None:
    """The mask blob is named by its outputs: kept while one is, handed back for deletion
    with the output's style or maker."""
    repo = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    try:
        alice = await user(repo, "alice")
        ink = await style_for(repo, alice, "ink", (KEY_A,))
        masked = replace(output("out-1", "job-1", alice, ink.id), mask_key=KEY_B)
        await repo.jobs.add_job(NewJob("job-1", "generate", alice.id, requester(), T0, ink.id))
        await repo.outputs.add_outputs([masked])
        assert await repo.outputs.get_output("out-1") == masked
        assert await repo.unreferenced_blob_keys([KEY_B]) == set()
        assert KEY_B in await repo.styles.delete_style(ink.id)
        assert await repo.unreferenced_blob_keys([KEY_B]) == {KEY_B}

        await repo.jobs.add_job(NewJob("job-2", "generate", alice.id, requester(), T0))
        await repo.outputs.add_outputs([replace(output("out-2", "job-2", alice), mask_key=KEY_C)])
        assert KEY_C in await repo.users.erase_user(alice.id)
    finally:
        await repo.close()
