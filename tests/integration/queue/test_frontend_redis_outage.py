"""The front end outlives its Redis going away (issue 20).

The real front end (SQLite file, the embedded Redis it starts, its event
consumer); the redis-server is SIGKILLed. A request made meanwhile is refused
with "the queue is unavailable" and leaves nothing queued in SQLite; event
delivery notices the outage, starts the embedded Redis again and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from tests.fakes.core import png
from tests.support.redis_outage import kill_redis_server, redis_pid, until_restarted
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import (
    ConfirmConsent,
    Imagine,
    IncomingFile,
    ShowStatus,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ErrorReply, JobProgress, JobQueued, TextReply
from stylebot.queue.events import EventPublisher
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_socket import socket_path_for

pytestmark = pytest.mark.slow

USER = Requester("test", "u1", "Ada", chat_id="c1")


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


async def test_requests_while_redis_is_down_are_refused_in_both_and_delivery_resumes(
    frontend: FrontEnd,
) -> None:
    database = frontend.settings.database_path
    socket_path = socket_path_for(frontend.settings.data_dir)
    files = (IncomingFile("a.png", png((10, 20, 30))), IncomingFile("b.png", png((40, 50, 60))))
    await frontend.bot.handle(UploadImages(USER, files))
    await frontend.bot.handle(ConfirmConsent(USER, "own-work", rights_confirmed=True))
    # Event delivery is not running yet, so nobody starts Redis again behind the test's back.
    killed = await asyncio.to_thread(kill_redis_server, socket_path)

    for command in (TrainStyle(USER, "ink"), Imagine(USER, "a quiet harbour", seed=1, steps=4)):
        reply = await frontend.bot.handle(command)
        assert isinstance(reply, ErrorReply), reply
        assert "queue is unavailable" in reply.text
        assert "not taken" in reply.text
    # Refused in SQLite too: no job, no style, no output holds a slot or a name.
    assert rows(database, "SELECT id, status FROM jobs") == []
    assert rows(database, "SELECT name FROM styles") == []
    assert rows(database, "SELECT id FROM outputs") == []
    status = await frontend.bot.handle(ShowStatus(USER))
    assert isinstance(status, TextReply)

    # Delivery notices the outage and starts the embedded Redis again.
    inbox = Inbox()
    frontend.add_sink("test", inbox)
    frontend.start_delivery()
    await until_restarted(socket_path, killed)

    queued = await frontend.bot.handle(TrainStyle(USER, "ink"))
    assert isinstance(queued, JobQueued), queued
    publish = EventPublisher(frontend.events.redis).publish
    await publish(JobEvent(queued.job_id, "train", "progress", step=1, total=8))
    progress = await inbox.next((JobProgress,), within=20)
    assert isinstance(progress.reply, JobProgress)
    assert progress.reply.job_id == queued.job_id


async def test_a_redis_that_stops_answering_refuses_requests_within_a_bound(
    frontend: FrontEnd,
) -> None:
    # Frozen, not dead: connections stay open and nothing answers (a hung host, a
    # network that drops packets). Enqueueing runs inside the SQLite transaction.
    pid = redis_pid(socket_path_for(frontend.settings.data_dir))
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        # The front end gives up after 10 s (QUEUE_CALL_TIMEOUT_S); it used to wait for ever.
        async with asyncio.timeout(30):
            reply = await frontend.bot.handle(Imagine(USER, "a quiet harbour", seed=1, steps=4))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert isinstance(reply, ErrorReply), reply
    assert "queue is unavailable" in reply.text
    assert rows(frontend.settings.database_path, "SELECT id FROM jobs") == []


async def test_delivery_carries_on_through_an_outage_while_it_runs(
    frontend: FrontEnd, inbox: Inbox
) -> None:
    socket_path = socket_path_for(frontend.settings.data_dir)
    queued = await frontend.bot.handle(Imagine(USER, "a quiet harbour", seed=1, steps=4))
    assert isinstance(queued, JobQueued), queued
    publish = EventPublisher(frontend.events.redis).publish
    await publish(JobEvent(queued.job_id, "generate", "progress", step=1, total=4))
    first = await inbox.next((JobProgress,), within=20)
    assert isinstance(first.reply, JobProgress)
    assert first.reply.step == 1

    killed = await asyncio.to_thread(kill_redis_server, socket_path)
    await until_restarted(socket_path, killed)

    # The job survived in Redis (append-only file) and its later events reach the user.
    await publish(JobEvent(queued.job_id, "generate", "progress", step=2, total=4))
    second = await inbox.next((JobProgress,), within=20)
    assert isinstance(second.reply, JobProgress)
    assert second.reply.step == 2
    status = await frontend.bot.handle(ShowStatus(USER))
    assert isinstance(status, TextReply)
    assert queued.job_id in status.text
