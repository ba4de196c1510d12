"""Output makers, privacy and fingerprints through the real SQLite repository: what
/verify says of a new output, of one recorded before migration 0009, and the band index
that finds an output whose watermark is gone."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from tests.fakes.core import person
from tests.support.old_database import database_before
from tests.support.picture_edits import png_bytes
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.provenance.test_watermark import reencode, scene

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import embed_watermark
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
ALICE_IN_DM = person("alice", server=None)
BOB = person("bob")


def band_rows(path: Path, output_id: str) -> list[tuple[int, str]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT band, value FROM output_fingerprint_bands WHERE output_id = ? ORDER BY band",
            (output_id,),
        ).fetchall()
    finally:
        db.close()


async def test_a_new_output_keeps_its_maker_privacy_and_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.sqlite"
    repo = await SqliteUnitOfWork.open(path)
    try:
        world = verify_world(repo, LocalBlobStore(tmp_path / "blobs"))
        output_id = await deliver(world, ALICE_IN_DM, scene(512, 512, seed=21), "my plan")
        record = await repo.outputs.get_output(output_id)
        assert record is not None
        assert (record.maker_name, record.maker_username, record.made_in_private) == (
            "Alice",
            None,
            True,
        )
        assert record.fingerprint is not None
        assert [value for _, value in band_rows(path, output_id)] == [
            record.fingerprint[n : n + 4] for n in range(0, 16, 4)
        ]

        made = await stored_picture(world, output_id)
        theirs = await check(world, BOB, made)
        assert theirs.verdict is VerifyVerdict.MADE
        assert "by: <@alice>, named 'Alice' when it was made" in theirs.text
        assert "my plan" not in theirs.text

        # Another output, delivered without a mark, is found by its fingerprint.
        unmarked = await deliver(world, ALICE_IN_DM, scene(512, 512, seed=22), mark=False)
        copy = reencode(await stored_picture(world, unmarked), "JPEG", quality=75)
        found = await check(world, BOB, copy)
        assert found.verdict is VerifyVerdict.RESEMBLES
        assert found.output_id == unmarked

        await repo.outputs.delete_output(unmarked)
        assert band_rows(path, unmarked) == []
        gone = await check(world, BOB, copy)
        assert gone.verdict is VerifyVerdict.NO_MARK
    finally:
        await repo.close()


async def test_an_output_from_before_the_migration_is_named_from_its_job(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.sqlite"
    blobs = LocalBlobStore(tmp_path / "blobs")
    output_id = "00c0ffee0042"
    key = await blobs.put(png_bytes(embed_watermark(scene(512, 512, seed=23), output_id)))
    await database_before(path, 9, lora_key=key, at=T0)
    origin = {
        "platform": "discord",
        "user_id": "alice",
        "display_name": "Alice",
        "chat_id": "c1",
        "server_id": None,  # asked in a direct message
    }
    async with aiosqlite.connect(path) as old:
        await old.execute(
            "INSERT INTO jobs (id, kind, user_id, style_id, status, origin, created_at,"
            " updated_at) VALUES ('generate-1', 'generate', 1, NULL, 'finished', ?, ?, ?)",
            (json.dumps(origin), T0.isoformat(), T0.isoformat()),
        )
        await old.execute(
            "INSERT INTO outputs (id, job_id, user_id, prompt, negative_prompt, seed, steps,"
            " guidance, width, height, blob_key, created_at) VALUES"
            " (?, 'generate-1', 1, 'my old plan', '', 5, 4, 7.5, 512, 512, ?, ?)",
            (output_id, key, T0.isoformat()),
        )
        # She has renamed herself since.
        await old.execute("UPDATE users SET display_name = 'Alice Smith' WHERE id = 1")
        await old.commit()

    repo = await SqliteUnitOfWork.open(path)
    try:
        record = await repo.outputs.get_output(output_id)
        assert record is not None
        assert (record.maker_name, record.made_in_private, record.fingerprint) == (None,) * 3
        world = verify_world(repo, blobs)
        report = await check(world, BOB, await stored_picture(world, output_id))
        assert report.verdict is VerifyVerdict.MADE, report.text
        assert "by: <@alice>, named 'Alice' when they asked for it (from the job's" in report.text
        assert "Alice Smith" not in report.text
        assert "my old plan" not in report.text, "asked in a direct message: private"
        mine = await check(world, person("alice"), await stored_picture(world, output_id))
        assert "prompt: my old plan" in mine.text
    finally:
        await repo.close()
