"""Jobs SQLite holds as queued but Redis lost are failed, told, and free their slots.

Real SQLite file, real embedded Redis. Redis loses the job for real: its
append-only file is deleted and the server SIGKILLed, so it comes back empty,
as a Redis whose disk was lost or whose last second was not yet written does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.support.redis_outage import kill_redis_server, until_restarted
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd, open_frontend
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobFinished, JobQueued
from stylebot.config import Settings
from stylebot.queue.redis_socket import socket_path_for

pytestmark = pytest.mark.slow

USER = Requester("test", "u1", "Ada", chat_id="c1")


def job_status(database: Path, job_id: str) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(status)


def lose_redis_data(data_dir: Path) -> int:
    """Delete the embedded Redis's append-only file, then SIGKILL it: it comes back empty."""
    redis_dir = data_dir / "redis"
    for path in redis_dir.glob("appendonly*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return kill_redis_server(socket_path_for(data_dir))


async def imagine(frontend: FrontEnd, prompt: str) -> str:
    reply = await frontend.bot.handle(Imagine(USER, prompt, seed=1, steps=4))
    assert isinstance(reply, JobQueued), reply
    return reply.job_id


async def lost_notice(inbox: Inbox) -> JobFinished:
    note = await inbox.next((JobFinished,), within=20)
    assert isinstance(note.reply, JobFinished)
    return note.reply


async def test_start_up_fails_the_jobs_redis_lost_and_tells_their_owners(
    settings: Settings,
) -> None:
    async with open_frontend(settings) as frontend:
        lost = await imagine(frontend, "a quiet harbour")
        await asyncio.to_thread(lose_redis_data, settings.data_dir)
    assert job_status(settings.database_path, lost) == "queued"

    async with open_frontend(settings) as frontend:
        inbox = Inbox()
        frontend.add_sink("test", inbox)
        frontend.start_delivery()
        notice = await lost_notice(inbox)
        assert notice.job_id == lost
        assert not notice.ok
        assert "lost while the queue was unavailable" in notice.text
        assert job_status(settings.database_path, lost) == "failed"
        # Its slot is free, and a job queued now is left alone by the next start.
        kept = await imagine(frontend, "a lighthouse")
    async with open_frontend(settings) as frontend:
        assert await frontend.bot.reconcile_with_queue() == []
    assert job_status(settings.database_path, kept) == "queued"


async def test_after_an_outage_that_lost_jobs_the_front_end_fails_them(
    frontend: FrontEnd, inbox: Inbox
) -> None:
    lost = await imagine(frontend, "a quiet harbour")
    killed = await asyncio.to_thread(lose_redis_data, frontend.settings.data_dir)
    await until_restarted(socket_path_for(frontend.settings.data_dir), killed)

    notice = await lost_notice(inbox)
    assert notice.job_id == lost
    assert not notice.ok
    assert job_status(frontend.settings.database_path, lost) == "failed"
