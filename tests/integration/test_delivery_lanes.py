"""A chat platform that makes the front end wait holds up only its own jobs' messages.

The real front end (SQLite, the Redis event stream and its consumer group) with two
sinks: one stands for a chat under a flood limit and does not return until released.
"""

from __future__ import annotations

import asyncio

import pytest

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobProgress, JobQueued, Notification
from stylebot.logs import current_job_id
from stylebot.queue.events import FRONTEND_GROUP, EventPublisher
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import JobEvent

pytestmark = pytest.mark.slow

FLOODED = Requester("flooded", "u1", "Ada", chat_id="c1")
CALM = Requester("calm", "u2", "Bea", chat_id="c2")


class Sink:
    def __init__(self) -> None:
        self.got: asyncio.Queue[Notification] = asyncio.Queue()
        # The job id log lines carry while each notification is sent.
        self.logged_as: list[str | None] = []

    async def __call__(self, notification: Notification) -> None:
        self.logged_as.append(current_job_id())
        await self.got.put(notification)


class HeldSink(Sink):
    """A sink that waits, as a sender waiting out a platform's flood limit does."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def __call__(self, notification: Notification) -> None:
        await self.release.wait()
        await super().__call__(notification)


async def queued(frontend: FrontEnd, who: Requester) -> str:
    reply = await frontend.bot.handle(Imagine(who, "a quiet harbour", seed=1, steps=4))
    assert isinstance(reply, JobQueued), reply
    return reply.job_id


async def test_a_held_chat_does_not_hold_up_another_chats_job(frontend: FrontEnd) -> None:
    held, calm = HeldSink(), Sink()
    frontend.add_sink("flooded", held)
    frontend.add_sink("calm", calm)
    flooded_job, calm_job = await queued(frontend, FLOODED), await queued(frontend, CALM)
    publish = EventPublisher(frontend.events.redis).publish
    # The flooded job's events come first in the stream.
    for step in (1, 2, 3):
        await publish(JobEvent(flooded_job, "generate", "progress", step=step, total=4))
    await publish(JobEvent(calm_job, "generate", "progress", step=1, total=4))
    frontend.start_delivery()

    async with asyncio.timeout(10):
        note = await calm.got.get()
    assert isinstance(note.reply, JobProgress)
    assert note.reply.job_id == calm_job
    assert calm.logged_as == [calm_job]  # `job=<id>` on the adapter's log lines
    assert held.got.empty()

    held.release.set()
    async with asyncio.timeout(10):
        notes = [await held.got.get() for _ in range(3)]
    # The held job's events arrived in the order the worker sent them, then all were acked.
    assert [n.reply.step for n in notes if isinstance(n.reply, JobProgress)] == [1, 2, 3]
    for _ in range(500):
        pending = await frontend.events.redis.xpending(EVENTS_STREAM, FRONTEND_GROUP)
        if pending["pending"] == 0:
            break
        await asyncio.sleep(0.02)
    assert pending["pending"] == 0
