"""/forgetme while the queue's Redis is down: real SQLite file, real embedded Redis, which
is stopped before the erasure and started again (on the same files) after it.

The erasure must finish its SQLite part and say so; what the queue holds of the user's
jobs (payloads with the prompt and the styles' names) is recorded as owed, and carried
out once Redis answers again: then nothing of it is left in Redis, in its files on disk,
or in the database's files. A clean-up the last run left is carried out at start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tests.fakes.core import SteppingClock, bot_on, person, png

from stylebot.bootstrap import PngWatermarkReader, open_frontend
from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    EraseMyData,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.bot.core.replies import JobQueued, TextReply
from stylebot.bot.core.service import StyleBot
from stylebot.config import Settings
from stylebot.queue.client import ArqJobQueue
from stylebot.queue.connection import connect
from stylebot.queue.keys import arq_job_key, cancel_key
from stylebot.queue.payloads import JobEvent, TrainResult, TrainSettings
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.unit_of_work import SqliteUnitOfWork

ALICE = person("alice")
SECRET_PROMPT = "zanzibar quokka lighthouse"
STYLE_NAMES = ("inkwashsecret", "oilsecret")


@dataclass
class Stack:
    data_dir: Path
    bot: StyleBot
    uow: SqliteUnitOfWork
    blobs: LocalBlobStore
    queue: ArqJobQueue
    redis: EmbeddedRedis


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir).start()
    redis = await connect(server.url)
    repo = await SqliteUnitOfWork.open(data_dir / "stylebot.sqlite3")
    blobs = LocalBlobStore(data_dir / "blobs")
    queue = ArqJobQueue(redis, blobs)
    bot = bot_on(
        repo,
        blobs,
        queue,
        PngWatermarkReader(),
        SteppingClock(),
        Policy(base_model="tiny", train=TrainSettings(steps=2, resolution=64)),
    )
    stack = Stack(data_dir, bot, repo, blobs, queue, server)
    try:
        yield stack
    finally:
        await bot.stop_queue_cleanups()
        await repo.close()
        await redis.aclose()
        # The server the test left running: it may have started a new one in its place.
        stack.redis.stop()


async def queue_work_of_alice(s: Stack) -> list[str]:
    """Two styles in training and an image waiting, all queued in the real Redis."""
    job_ids: list[str] = []
    for seed, name in enumerate(STYLE_NAMES):
        files = tuple(
            IncomingFile(f"p{i}.png", png((40 * seed + 10 * i, 90, 200))) for i in range(2)
        )
        await s.bot.handle(UploadImages(ALICE, files))
        await s.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
        queued = await s.bot.handle(TrainStyle(ALICE, name))
        assert isinstance(queued, JobQueued), queued
        job_ids.append(queued.job_id)
        if name == STYLE_NAMES[0]:
            # The first one finished (its payload is still in Redis: no worker took it).
            lora = await s.blobs.put(f"weights of {name}".encode())
            result = TrainResult(lora_key=lora, steps=2, final_loss=0.5, seconds=1.0)
            await s.bot.handle_event(
                JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
            )
    imagined = await s.bot.handle(Imagine(ALICE, SECRET_PROMPT, seed=3))
    assert isinstance(imagined, JobQueued), imagined
    job_ids.append(imagined.job_id)
    return job_ids


def files_holding(root: Path, needles: tuple[bytes, ...]) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


def pending_rows(s: Stack) -> int:
    with sqlite3.connect(s.data_dir / "stylebot.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM pending_queue_cleanups").fetchone()[0])


async def rewrite_done(s: Stack) -> None:
    async with asyncio.timeout(30):
        while True:
            info = await s.queue.redis.info("persistence")
            if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
                return
            await asyncio.sleep(0.1)


async def test_erasure_with_redis_down_erases_the_records_and_the_queue_catches_up(
    stack: Stack,
) -> None:
    s = stack
    job_ids = await queue_work_of_alice(s)
    assert await s.queue.redis.exists(*(f"arq:job:{job_id}" for job_id in job_ids)) == 3

    s.redis.stop()  # a real outage: the server is shut down
    reply = await s.bot.handle(EraseMyData(ALICE, confirmed=True))

    # The user is told the erasure is done; every record is gone from SQLite.
    assert isinstance(reply, TextReply), reply
    assert reply.text.startswith("Erased: 2 style(s), 4 reference image(s)")
    assert await s.uow.users.find_user(ALICE.platform, ALICE.user_id) is None
    for job_id in job_ids:
        assert await s.uow.jobs.get_job(job_id) is None
    # The queue's part is owed, durably: one row, ids only.
    assert pending_rows(s) == 1
    # Nothing erased is readable in the database's files while it is still open.
    needles = (SECRET_PROMPT.encode(), *(name.encode() for name in STYLE_NAMES))
    outside_redis = [
        p for p in files_holding(s.data_dir, needles) if s.redis.redis_dir not in p.parents
    ]
    assert outside_redis == []

    # Redis comes back with what it had on disk: the payloads are there again.
    s.redis = EmbeddedRedis(s.data_dir).start()
    # The carrier retries on its own; no command, no restart of the front end.
    async with asyncio.timeout(60):
        while pending_rows(s):  # noqa: ASYNC110 - another process's file, no event to wait on
            await asyncio.sleep(0.2)
    await rewrite_done(s)

    for job_id in job_ids:
        left = [key async for key in s.queue.redis.scan_iter(match=f"*{job_id}*")]
        # Only the cancel flag (the id alone, with a TTL) of the jobs that were still
        # waiting, for a worker that may have them; the first training had finished.
        assert left == ([] if job_id == job_ids[0] else [cancel_key(job_id).encode()])
    assert files_holding(s.data_dir, needles) == []


async def test_a_clean_up_left_by_the_last_run_is_carried_out_when_the_front_end_starts(
    settings: Settings,
) -> None:
    """The last run recorded an erasure's queue part and stopped before Redis was back."""
    job_id = "generate-0123456789abcdef"
    with EmbeddedRedis(settings.data_dir) as server:  # the front end joins it
        client = Redis(unix_socket_path=str(server.socket_path))
        await client.set(arq_job_key(job_id), SECRET_PROMPT.encode())
        repo = await SqliteUnitOfWork.open(settings.database_path)
        async with repo.transaction():
            await repo.cleanups.add(
                QueueCleanup(forget_job_ids=(job_id,), rewrite_files=True), datetime.now(UTC)
            )
        await repo.close()

        async with open_frontend(settings):
            assert await client.exists(arq_job_key(job_id)) == 0
            with sqlite3.connect(settings.database_path) as db:
                assert db.execute("SELECT COUNT(*) FROM pending_queue_cleanups").fetchone() == (0,)
        await client.aclose()


async def test_style_deletion_with_redis_down_deletes_the_style_and_the_queue_catches_up(
    stack: Stack,
) -> None:
    s = stack
    job_ids = await queue_work_of_alice(s)
    s.redis.stop()

    reply = await s.bot.handle(DeleteStyle(ALICE, STYLE_NAMES[1]))

    assert isinstance(reply, TextReply), reply
    assert reply.text.startswith(f"Deleted style {STYLE_NAMES[1]}")
    assert await s.uow.jobs.get_job(job_ids[1]) is not None  # its job history stays, cancelled
    assert pending_rows(s) == 1
    s.redis = EmbeddedRedis(s.data_dir).start()
    async with asyncio.timeout(60):
        while pending_rows(s):  # noqa: ASYNC110 - another process's file, no event to wait on
            await asyncio.sleep(0.2)
    assert await s.queue.redis.exists(f"arq:job:{job_ids[1]}") == 0
    assert await s.queue.redis.exists(cancel_key(job_ids[1])) == 1
    # The other style's job and the image waiting are untouched.
    assert await s.queue.redis.exists(f"arq:job:{job_ids[2]}") == 1
