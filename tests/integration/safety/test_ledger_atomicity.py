"""A record and its consent-ledger entry commit together, on a real SQLite file.

Failures are injected the way they happen to a real database: another connection adds a
trigger that makes one write fail (as a full disk, a constraint or a damaged table
would), and the test looks at the file afterwards through a connection of its own.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fakes.admin import FakeAdminStore, FakeTrainingSwitch, FakeWorkerDirectory
from tests.fakes.core import RecordingQueue, SteppingClock, bot_on, person

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.admin_commands import RemoveOptOuts
from stylebot.bot.core.admin_ports import AdminPorts, parse_operators
from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    EraseMyData,
    IncomingFile,
    OptOut,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.ledger import LedgerKind, verify_chain
from stylebot.bot.core.model import NewConsent
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import JobQueued, TextReply
from stylebot.bot.core.service import StyleBot
from stylebot.queue.payloads import JobEvent, TrainResult, TrainSettings
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.ledger import SqliteConsentLedger
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")


def painting(seed: int) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((96, 96), Image.Resampling.BICUBIC).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Stack:
    database: Path
    bot: StyleBot
    uow: SqliteUnitOfWork
    ledger: SqliteConsentLedger
    blobs: LocalBlobStore
    queue: RecordingQueue


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    database = tmp_path / "stylebot.db"
    repo = await SqliteUnitOfWork.open(database)
    ledger = repo.ledger
    blobs = LocalBlobStore(tmp_path / "blobs")
    queue = RecordingQueue()
    bot = bot_on(
        repo,
        blobs,
        queue,
        PngWatermarkReader(),
        SteppingClock(),
        Policy(base_model="tiny", train=TrainSettings(steps=2, resolution=64)),
        admin=AdminPorts(
            FakeAdminStore(),
            FakeTrainingSwitch(),
            FakeWorkerDirectory(),
            parse_operators("discord:root"),
        ),
    )
    try:
        yield Stack(database, bot, repo, ledger, blobs, queue)
    finally:
        await repo.close()


def sql(database: Path, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on a connection of its own, as another process would."""
    with sqlite3.connect(database) as db:
        return list(db.execute(statement))


def refuse_inserts(database: Path, table: str, when: str = "1") -> None:
    sql(
        database,
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN {when}"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )


def allow_inserts(database: Path, table: str) -> None:
    sql(database, f"DROP TRIGGER refuse_{table}")


def count(database: Path, table: str) -> int:
    return int(sql(database, f"SELECT COUNT(*) FROM {table}")[0][0])  # type: ignore[call-overload]


async def upload(s: Stack, *seeds: int) -> None:
    files = tuple(IncomingFile(f"p{i}.png", painting(i)) for i in seeds)
    await s.bot.handle(UploadImages(ALICE, files))


async def test_a_failed_ledger_append_leaves_no_consent_record(stack: Stack) -> None:
    await upload(stack, 1, 2)
    refuse_inserts(stack.database, "consent_ledger")

    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await stack.bot.handle(ConfirmConsent(ALICE, "own-work", True))

    assert count(stack.database, "consents") == 0
    assert count(stack.database, "consent_ledger") == 0
    # Nothing half-done to trip over: training still asks for consent, and once the
    # ledger accepts writes again the same confirmation goes through whole.
    refused = await stack.bot.handle(TrainStyle(ALICE, "ink"))
    assert "Confirm first" in getattr(refused, "text", "")
    allow_inserts(stack.database, "consent_ledger")
    assert isinstance(await stack.bot.handle(ConfirmConsent(ALICE, "own-work", True)), TextReply)
    [(consent_id,)] = sql(stack.database, "SELECT id FROM consents")
    [entry] = await stack.ledger.entries()
    assert entry.payload["consent_id"] == consent_id


async def test_a_failed_consent_write_takes_the_ledger_entry_with_it(stack: Stack) -> None:
    """The other way round: the entry is appended first, then the record fails."""
    await upload(stack, 1)
    alice = await stack.uow.users.find_user("discord", "alice")
    assert alice is not None
    refuse_inserts(stack.database, "consents")

    async def entry_then_consent() -> None:
        async with stack.uow.transaction():
            await stack.ledger.append(LedgerKind.CONSENT, {"for": "test"}, SteppingClock().now())
            await stack.uow.consents.add_consent(
                NewConsent(alice.id, "own-work", "v1", True, [], SteppingClock().now())
            )

    with pytest.raises(Exception, match="injected failure"):
        await entry_then_consent()

    assert count(stack.database, "consent_ledger") == 0
    assert count(stack.database, "consents") == 0
    assert await stack.ledger.entries() == []


async def test_a_failed_training_entry_leaves_no_style_and_queues_nothing(stack: Stack) -> None:
    await upload(stack, 1, 2)
    await stack.bot.handle(ConfirmConsent(ALICE, "own-work", True))
    refuse_inserts(stack.database, "consent_ledger", "NEW.kind = 'training'")

    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await stack.bot.handle(TrainStyle(ALICE, "ink"))

    assert count(stack.database, "styles") == 0
    assert count(stack.database, "jobs") == 0
    assert stack.queue.train_jobs == []
    assert count(stack.database, "uploads WHERE style_id IS NULL") == 2
    allow_inserts(stack.database, "consent_ledger")
    assert isinstance(await stack.bot.handle(TrainStyle(ALICE, "ink")), JobQueued)
    entries = await stack.ledger.entries()
    assert [e.kind for e in entries] == ["consent", "training"]
    assert verify_chain(entries).intact


async def test_a_failed_revocation_entry_keeps_the_style_and_its_files(
    stack: Stack, tmp_path: Path
) -> None:
    await upload(stack, 1, 2)
    await stack.bot.handle(ConfirmConsent(ALICE, "own-work", True))
    queued = await stack.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    lora = await stack.blobs.put(b"weights")
    result = TrainResult(lora_key=lora, steps=2, final_loss=0.5, seconds=1.0).to_dict()
    await stack.bot.handle_event(JobEvent(queued.job_id, "train", "finished", result=result))
    files = sorted(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    assert len(files) == 3
    refuse_inserts(stack.database, "consent_ledger", "NEW.kind = 'revocation'")

    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await stack.bot.handle(DeleteStyle(ALICE, "ink"))

    assert count(stack.database, "styles") == 1
    assert count(stack.database, "uploads") == 2
    assert all(path.is_file() for path in files)  # blobs go only after the commit
    allow_inserts(stack.database, "consent_ledger")
    assert isinstance(await stack.bot.handle(DeleteStyle(ALICE, "ink")), TextReply)
    assert not any(path.exists() for path in files)
    entries = await stack.ledger.entries()
    assert [e.kind for e in entries] == ["consent", "training", "revocation"]
    assert verify_chain(entries).intact


async def test_a_failed_ledger_append_undoes_the_whole_optout_removal(stack: Stack) -> None:
    files = tuple(IncomingFile(f"o{i}.png", painting(i)) for i in (1, 2))
    assert isinstance(await stack.bot.handle(OptOut(ALICE, files)), TextReply)
    # The second removal's entry fails: the first removal must not stay done either.
    refuse_inserts(stack.database, "consent_ledger", "(SELECT COUNT(*) FROM consent_ledger) >= 1")
    remove = RemoveOptOuts(person("root"), ids=(1, 2), reason="test")

    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await stack.bot.handle(remove)

    assert count(stack.database, "optout_images") == 2
    assert count(stack.database, "optout_bands") == 8
    assert count(stack.database, "consent_ledger") == 0
    allow_inserts(stack.database, "consent_ledger")
    assert isinstance(await stack.bot.handle(remove), TextReply)
    assert count(stack.database, "optout_images") == 0
    assert count(stack.database, "optout_bands") == 0  # the index goes with the rows
    entries = await stack.ledger.entries()
    assert [e.kind for e in entries] == [LedgerKind.OPTOUT_REMOVAL] * 2
    assert verify_chain(entries).intact


async def test_a_failed_erasure_entry_leaves_the_person_their_usage_and_opt_outs(
    stack: Stack,
) -> None:
    """The erasure's last write is its ledger entry: when it fails, the records, the usage
    written (the erasure itself counts) and the opt-outs handed on earlier in the same
    unit of work all stay as they were."""
    await upload(stack, 1)
    optout = (IncomingFile("mine.png", painting(5)),)
    assert isinstance(await stack.bot.handle(OptOut(ALICE, optout)), TextReply)
    tables = ("users", "uploads", "usage_events", "optout_images", "consent_ledger")
    before = {table: count(stack.database, table) for table in tables}
    naming_alice = "optout_images WHERE platform_user_id = 'alice'"
    assert count(stack.database, naming_alice) == 1
    refuse_inserts(stack.database, "consent_ledger", "NEW.kind = 'erasure'")

    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        await stack.bot.handle(EraseMyData(ALICE, confirmed=True))

    assert {table: count(stack.database, table) for table in tables} == before
    assert count(stack.database, naming_alice) == 1
    allow_inserts(stack.database, "consent_ledger")
    assert isinstance(await stack.bot.handle(EraseMyData(ALICE, confirmed=True)), TextReply)
    assert count(stack.database, "users") == 0
    assert count(stack.database, naming_alice) == 0
    entries = await stack.ledger.entries()
    assert [e.kind for e in entries] == [LedgerKind.ERASURE]
    assert verify_chain(entries).intact
