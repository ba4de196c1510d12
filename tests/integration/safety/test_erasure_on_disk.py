"""/forgetme on a real SQLite file and a real blob directory: afterwards none of the
user's files exist, no row names them, the ledger still verifies, and another user's
style and images (on the same base model, some made with the erased user's style) are
exactly what is left."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import RecordingQueue, SteppingClock, bot_on, person

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.commands import (
    ConfirmConsent,
    EraseMyData,
    Imagine,
    IncomingFile,
    OptOut,
    ShareStyle,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.ledger import verify_chain
from stylebot.bot.core.model import StyleStatus
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErasureConfirmation, ErrorReply, JobQueued, TextReply
from stylebot.bot.core.service import StyleBot
from stylebot.cli import main
from stylebot.config import Settings
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateResult,
    JobEvent,
    TrainResult,
    TrainSettings,
)
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")
BOB = person("bob")


def painting(seed: int) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((96, 96), Image.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@dataclass
class Stack:
    settings: Settings
    bot: StyleBot
    uow: SqliteUnitOfWork
    blobs: LocalBlobStore
    queue: RecordingQueue


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    settings = Settings(data_dir=tmp_path / "data")
    repo = await SqliteUnitOfWork.open(settings.database_path)
    blobs = LocalBlobStore(settings.blob_dir)
    queue = RecordingQueue()
    bot = bot_on(
        repo,
        blobs,
        queue,
        PngWatermarkReader(),
        SteppingClock(),
        Policy(base_model="tiny", train=TrainSettings(steps=2, resolution=64)),
    )
    try:
        yield Stack(settings, bot, repo, blobs, queue)
    finally:
        await repo.close()


async def train(s: Stack, who: object, name: str, *seeds: int) -> None:
    files = tuple(IncomingFile(f"p{i}.png", painting(i)) for i in seeds)
    await s.bot.handle(UploadImages(who, files))  # type: ignore[arg-type]
    await s.bot.handle(ConfirmConsent(who, "CC-BY-4.0", True))  # type: ignore[arg-type]
    queued = await s.bot.handle(TrainStyle(who, name))  # type: ignore[arg-type]
    assert isinstance(queued, JobQueued)
    lora = await s.blobs.put(f"weights of {name}".encode())
    result = TrainResult(lora_key=lora, steps=2, final_loss=0.5, seconds=1.0)
    await s.bot.handle_event(JobEvent(queued.job_id, "train", "finished", result=result.to_dict()))
    await s.bot.handle(ShareStyle(who, name, public=True))  # type: ignore[arg-type]


async def generate(s: Stack, who: object, style: str) -> None:
    await s.bot.handle(Imagine(who, "a harbour", style=style))  # type: ignore[arg-type]
    job = s.queue.generate_jobs[-1]
    key = await s.blobs.put(f"output of {job.job_id}".encode())
    result = GenerateResult(images=(GeneratedImage(job.output_ids[0], key, job.seed),), seconds=1)
    await s.bot.handle_event(JobEvent(job.job_id, "generate", "finished", result=result.to_dict()))


def rows(database: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(sql, params))


def blob_keys_of(database: Path, user_id: int) -> set[str]:
    return {
        row[0]
        for row in rows(
            database,
            "SELECT blob_key FROM uploads WHERE user_id = ?"
            " UNION SELECT blob_key FROM outputs WHERE user_id = ? AND blob_key IS NOT NULL"
            " UNION SELECT o.blob_key FROM outputs o JOIN styles s ON o.style_id = s.id"
            "  WHERE s.owner_id = ? AND o.blob_key IS NOT NULL"
            " UNION SELECT lora_key FROM styles WHERE owner_id = ? AND lora_key IS NOT NULL",
            (user_id, user_id, user_id, user_id),
        )
    }


async def test_erasure_leaves_nothing_of_the_user_on_disk_and_keeps_the_others_work(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    s, database = stack, stack.settings.database_path
    await train(s, BOB, "sea", 20, 21)
    await generate(s, BOB, "sea")
    await train(s, ALICE, "ink", 1, 2)  # same base model as Bob's
    await generate(s, ALICE, "sea")  # Alice's image with Bob's style
    await generate(s, BOB, "ink")  # Bob's image with Alice's style
    # Waiting for training: one new image, and one that is byte for byte Bob's.
    await s.bot.handle(UploadImages(ALICE, (IncomingFile("a.png", painting(3)),)))
    await s.bot.handle(UploadImages(ALICE, (IncomingFile("b.png", painting(20)),)))
    await s.bot.handle(OptOut(ALICE, (IncomingFile("mine.png", painting(50)),)))

    alice = await s.uow.users.find_user("discord", "alice")
    bob = await s.uow.users.find_user("discord", "bob")
    assert alice is not None
    assert bob is not None
    bob_own = {
        row[0]
        for row in rows(
            database,
            "SELECT blob_key FROM uploads WHERE user_id = ?"
            " UNION SELECT lora_key FROM styles WHERE owner_id = ?"
            " UNION SELECT blob_key FROM outputs WHERE user_id = ? AND style_id IN"
            "  (SELECT id FROM styles WHERE owner_id = ?)",
            (bob.id, bob.id, bob.id, bob.id),
        )
    }
    alice_only = blob_keys_of(database, alice.id) - bob_own
    assert len(alice_only) == 6  # 3 images, her weights, her image, Bob's image with ink
    alice_files = {s.blobs.path(key) for key in alice_only}
    assert all(path.is_file() for path in alice_files)
    bob_files = {s.blobs.path(key) for key in bob_own}

    preview = await s.bot.handle(EraseMyData(ALICE))
    assert isinstance(preview, ErasureConfirmation)
    assert files_under(s.settings.blob_dir) == alice_files | bob_files  # nothing yet
    reply = await s.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert isinstance(reply, TextReply), reply

    # On disk: exactly Bob's files are left.
    assert files_under(s.settings.blob_dir) == bob_files
    # In the database: no row names Alice, by id or by anything she typed or is called.
    user_columns = {"users": "id", "uploads": "user_id", "consents": "user_id"}
    user_columns |= {"styles": "owner_id", "jobs": "user_id", "outputs": "user_id"}
    for table, column in user_columns.items():
        assert rows(database, f"SELECT * FROM {table} WHERE {column} = ?", (alice.id,)) == []
    tables = [
        row[0]
        for row in rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] not in ("consent_ledger", "schema_migrations", "sqlite_sequence")
    ]
    for table in tables:
        for row in rows(database, f"SELECT * FROM {table}"):
            assert "alice" not in " ".join(str(v) for v in tuple(row)).lower(), (table, tuple(row))
    # Bob's style and his own image are whole; his image made with ink went with ink.
    sea = await s.uow.styles.find_style(bob.id, "sea")
    assert sea is not None
    assert sea.status is StyleStatus.READY
    assert await s.blobs.exists(sea.lora_key or "")
    bob_outputs = await s.uow.outputs.user_outputs(bob.id)
    assert [o.style_id for o in bob_outputs] == [sea.id]
    # Alice's opt-out still refuses copies, without naming her.
    copy = await s.bot.handle(UploadImages(BOB, (IncomingFile("c.png", painting(50)),)))
    assert isinstance(copy, ErrorReply)

    # The ledger keeps the chain: consent, training, revocation ... erasure.
    entries = await s.uow.ledger.entries()
    assert verify_chain(entries).intact
    assert [e.kind for e in entries][-2:] == ["revocation", "erasure"]
    status = await asyncio.to_thread(
        main, ["--data-dir", str(s.settings.data_dir), "consent", "verify"]
    )
    assert status == 0
    assert f"{len(entries)} entries, intact" in capsys.readouterr().out


async def test_an_erasure_that_fails_midway_changes_nothing_and_a_second_try_completes(
    stack: Stack,
) -> None:
    """The last step's writes (records, usage, opt-outs, ledger entry) commit together: a
    failure in the usage update (recent rows go under a code), injected as a trigger,
    leaves all of it as it was."""
    s, database = stack, stack.settings.database_path
    await train(s, BOB, "sea", 20, 21)
    await generate(s, ALICE, "sea")  # Alice has no style: all she has goes in one step
    await s.bot.handle(UploadImages(ALICE, (IncomingFile("a.png", painting(3)),)))
    await s.bot.handle(OptOut(ALICE, (IncomingFile("mine.png", painting(50)),)))
    alice = await s.uow.users.find_user("discord", "alice")
    assert alice is not None

    def alice_rows() -> dict[str, int]:
        counted = {
            "users": rows(database, "SELECT * FROM users WHERE id = ?", (alice.id,)),
            "uploads": rows(database, "SELECT * FROM uploads WHERE user_id = ?", (alice.id,)),
            "outputs": rows(database, "SELECT * FROM outputs WHERE user_id = ?", (alice.id,)),
            "usage": rows(database, "SELECT * FROM usage_events WHERE user_key LIKE '%alice'"),
            "optouts": rows(
                database, "SELECT * FROM optout_images WHERE platform_user_id = 'alice'"
            ),
            "erasures": rows(database, "SELECT * FROM consent_ledger WHERE kind = 'erasure'"),
        }
        return {table: len(found) for table, found in counted.items()}

    before = alice_rows()
    assert before == {
        "users": 1,
        "uploads": 1,
        "outputs": 1,
        "usage": before["usage"],
        "optouts": 1,
        "erasures": 0,
    }
    assert before["usage"] > 0
    blobs_before = files_under(s.settings.blob_dir)

    rows(  # on a connection of its own, as another process would
        database,
        "CREATE TRIGGER refuse_usage_update BEFORE UPDATE ON usage_events"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await s.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert alice_rows() == before
    assert files_under(s.settings.blob_dir) == blobs_before

    rows(database, "DROP TRIGGER refuse_usage_update")
    reply = await s.bot.handle(EraseMyData(ALICE, confirmed=True))
    assert isinstance(reply, TextReply), reply
    assert alice_rows() == {
        "users": 0,
        "uploads": 0,
        "outputs": 0,
        "usage": 0,
        "optouts": 0,
        "erasures": 1,
    }
    assert len(rows(database, "SELECT * FROM optout_images")) == 1  # in force, anonymous
    assert len(files_under(s.settings.blob_dir)) == len(blobs_before) - 2
