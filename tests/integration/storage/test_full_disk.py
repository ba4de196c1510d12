"""A full disk, for real: the data directory on a small tmpfs filled to the brim.

The user is told "the bot's storage is full; nothing was saved", the operator gets
one log line (no traceback), no blob is left without its record, and once space is
freed the same request works. Redis lives elsewhere here: only the data directory
(SQLite and the blob store) is on the full disk.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import person
from tests.support.small_disk import fill, mounted_tmpfs

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import ConfirmConsent, IncomingFile, TrainStyle, UploadImages
from stylebot.bot.core.errors import StorageFull
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, JobQueued, Notification
from stylebot.config import Settings
from stylebot.queue.events import FRONTEND_GROUP, EventPublisher
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.storage.admin import SqliteAdminStore
from stylebot.storage.blobs import LocalBlobStore

ALICE = person("alice")
FULL = "the bot's storage is full; nothing was saved"


def noise_png(seed: int, side: int = 384) -> bytes:
    """An image PNG cannot compress: about side² × 3 bytes on disk."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def blob_files(blob_dir: Path) -> list[Path]:
    """Every file in the blob store, temporary ones included."""
    return sorted(p for p in blob_dir.rglob("*") if p.is_file()) if blob_dir.exists() else []


async def pending(frontend: FrontEnd) -> int:
    """Events read but not acknowledged (handled again at the next start)."""
    summary = await frontend.queue.redis.xpending(EVENTS_STREAM, FRONTEND_GROUP)
    return int(summary["pending"])


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "30m") as mounted:
        yield mounted


@pytest.fixture
def redis_elsewhere(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis-home") as server:
        yield server


@pytest.fixture
def settings(settings: Settings, disk: Path, redis_elsewhere: EmbeddedRedis) -> Settings:
    return settings.replace(data_dir=disk / "data", redis_url=redis_elsewhere.url)


async def test_an_upload_that_does_not_fit_is_refused_and_leaves_no_blob(
    frontend: FrontEnd, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = noise_png(1), noise_png(2)
    files = (IncomingFile("a.png", first), IncomingFile("b.png", second))
    before = blob_files(frontend.settings.blob_dir)
    # Room for the first image but not the second: the first blob is written, then
    # the second fails; the first must not stay behind without its record.
    filler = fill(disk, leave=len(first) * 3 // 2)

    with caplog.at_level(logging.ERROR):
        reply = await frontend.bot.handle(UploadImages(ALICE, files))
    assert isinstance(reply, ErrorReply)
    assert FULL in reply.text
    assert blob_files(frontend.settings.blob_dir) == before
    user = await frontend.uow.users.find_user("discord", "alice")
    assert user is None or await frontend.uow.uploads.pending_uploads(user.id) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None
    assert "UploadImages refused" in errors[0].getMessage()
    assert "no space left" in errors[0].getMessage()

    filler.unlink()  # the operator frees space: the same upload now works
    assert isinstance(await frontend.bot.handle(UploadImages(ALICE, files)), ConsentRequest)
    assert len(blob_files(frontend.settings.blob_dir)) == len(before) + 2


async def test_a_commit_that_does_not_fit_is_refused_and_the_database_carries_on(
    frontend: FrontEnd, disk: Path
) -> None:
    files = (IncomingFile("a.png", noise_png(3, side=96)),)
    assert isinstance(await frontend.bot.handle(UploadImages(ALICE, files)), ConsentRequest)
    filler = fill(disk)
    reply = await frontend.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    assert isinstance(reply, ErrorReply)
    assert FULL in reply.text
    filler.unlink()
    await frontend.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    assert isinstance(await frontend.bot.handle(TrainStyle(ALICE, "warm")), JobQueued)


async def test_the_blob_store_says_full_and_keeps_no_temporary_file(disk: Path) -> None:
    blobs = LocalBlobStore(disk / "blobs")
    filler = fill(disk)
    with pytest.raises(StorageFull, match="the blob store: no space left"):
        await blobs.put(noise_png(4))
    assert blob_files(disk / "blobs") == []
    filler.unlink()
    key = await blobs.put(noise_png(4))
    assert blob_files(disk / "blobs") == [blobs.path(key)]


async def test_events_that_cannot_be_recorded_log_one_line_and_wait_for_space(
    frontend: FrontEnd, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = (IncomingFile("a.png", noise_png(5, side=96)),)
    await frontend.bot.handle(UploadImages(ALICE, files))
    await frontend.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await frontend.bot.handle(TrainStyle(ALICE, "warm"))
    assert isinstance(queued, JobQueued)
    delivered: list[Notification] = []

    async def sink(notification: Notification) -> None:
        delivered.append(notification)

    frontend.add_sink("discord", sink)
    frontend.storage_full_retry_s = 0.2
    filler = fill(disk)
    publisher = EventPublisher(frontend.queue.redis)
    with caplog.at_level(logging.INFO, logger="stylebot"):
        for step in range(1, 6):
            await publisher.publish(JobEvent(queued.job_id, "train", "progress", step, 100))
        frontend.start_delivery()
        for _ in range(300):  # all five read, and handled (logged)
            if await pending(frontend) == 5 and caplog.records:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last of them handled (and retried) too
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in errors] == ["events wait until there is space"]
    assert all(r.exc_info is None for r in caplog.records)
    assert delivered == []
    assert await pending(frontend) == 5  # none lost: they wait

    # Space again: the waiting events are recorded and told, in order, without a restart.
    filler.unlink()
    for _ in range(300):
        if await pending(frontend) == 0:
            break
        await asyncio.sleep(0.1)
    await frontend.stop_delivery()
    assert await pending(frontend) == 0
    assert [n.reply.step for n in delivered] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]


async def log_actions_until_it_fails(store: SqliteAdminStore) -> None:
    """Write past the pages the database files already have (then a write must fail)."""
    for _ in range(1000):
        await store.log_action("op", "ban", "x" * 4000, datetime.now(UTC))
    raise AssertionError("a thousand 4 KB rows fitted on a full disk")


async def test_the_admin_store_says_full_and_keeps_working_after(disk: Path) -> None:
    store = await SqliteAdminStore.open(disk / "admin.sqlite3")
    try:
        filler = fill(disk)
        with pytest.raises(StorageFull, match="the admin store: no space left"):
            await log_actions_until_it_fails(store)
        filler.unlink()
        await store.ban("discord", "mallory", "spam", "op", datetime.now(UTC))
        assert await store.ban_of("discord", "mallory") is not None
    finally:
        await store.close()
