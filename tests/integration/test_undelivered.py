"""A result the chat platform refuses reaches the member as a message saying why, and its
event is acknowledged, on every platform alike (the front end's delivery loop).

The real front end (SQLite, the Redis event stream and its consumer group) with sinks
that refuse the way a platform does: a few times then never again, or for good.
"""

from __future__ import annotations

import asyncio

from tests.support.large_results import finish_with_images, noise_png, unacknowledged_events

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.delivery import DELIVERY_ATTEMPTS, Undeliverable
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued, Notification
from stylebot.queue.events import FRONTEND_GROUP
from stylebot.queue.keys import EVENTS_STREAM

ME = Requester("refusing", "u1", "Ada", chat_id="c1")


class RefusingSink:
    """A platform that refuses every result (raising ``refusal``) and takes texts."""

    def __init__(self, refusal: Exception) -> None:
        self.refusal = refusal
        self.refused = 0
        self.was_refused = asyncio.Event()
        self.got: asyncio.Queue[Notification] = asyncio.Queue()

    async def __call__(self, notification: Notification) -> None:
        if isinstance(notification.reply, ImagesReady):
            self.refused += 1
            self.was_refused.set()
            raise self.refusal
        await self.got.put(notification)


async def queued(frontend: FrontEnd, count: int) -> str:
    reply = await frontend.bot.handle(Imagine(ME, "a quiet harbour", seed=1, count=count))
    assert isinstance(reply, JobQueued), reply
    return reply.job_id


async def told_why(sink: RefusingSink) -> JobFinished:
    async with asyncio.timeout(20):
        note = await sink.got.get()
    assert isinstance(note.reply, JobFinished), note.reply
    assert not note.reply.ok
    return note.reply


async def test_a_result_refused_at_every_try_is_acknowledged_with_a_message(
    frontend: FrontEnd,
) -> None:
    sink = RefusingSink(RuntimeError("413 Payload Too Large"))
    frontend.add_sink(ME.platform, sink)
    frontend.retry_delays_s = (0.01,)
    job_id = await queued(frontend, 2)
    await finish_with_images(frontend, job_id, [noise_png(64, 64, 1), noise_png(64, 64, 2)])
    frontend.start_delivery()

    notice = await told_why(sink)
    assert notice.job_id == job_id
    assert "your 2 images could not be delivered here" in notice.text
    assert f"refused it {DELIVERY_ATTEMPTS} times" in notice.text
    assert sink.refused == DELIVERY_ATTEMPTS
    assert await unacknowledged_events(frontend) == 0


async def test_a_result_the_adapter_knows_is_undeliverable_is_not_tried_again(
    frontend: FrontEnd,
) -> None:
    sink = RefusingSink(Undeliverable("one file is 12.6 MB, more than a message may carry"))
    frontend.add_sink(ME.platform, sink)
    job_id = await queued(frontend, 1)
    await finish_with_images(frontend, job_id, [noise_png(64, 64)])
    frontend.start_delivery()

    notice = await told_why(sink)
    assert "your image could not be delivered here: one file is 12.6 MB" in notice.text
    assert sink.refused == 1
    assert await unacknowledged_events(frontend) == 0


async def test_failed_tries_are_counted_across_restarts(frontend: FrontEnd) -> None:
    sink = RefusingSink(RuntimeError("Discord is down"))
    frontend.add_sink(ME.platform, sink)
    frontend.retry_delays_s = (3600.0,)  # the process "stops" before it tries again
    job_id = await queued(frontend, 1)
    await finish_with_images(frontend, job_id, [noise_png(64, 64)])
    frontend.start_delivery()
    async with asyncio.timeout(20):
        await sink.was_refused.wait()
    [waiting] = await frontend.events.redis.xpending_range(
        EVENTS_STREAM, FRONTEND_GROUP, "-", "+", 10
    )
    for _ in range(250):  # the failure is counted just after the refusal
        if await frontend.events.delivery_failures(waiting["message_id"].decode()) == 1:
            break
        await asyncio.sleep(0.02)
    await frontend.stop_delivery()

    frontend.retry_delays_s = (0.01,)
    frontend.start_delivery()  # a restart: unacknowledged events are claimed again
    await told_why(sink)
    assert sink.refused == DELIVERY_ATTEMPTS  # not 1 + DELIVERY_ATTEMPTS
    assert await unacknowledged_events(frontend) == 0


async def test_a_platform_that_is_not_running_keeps_the_event_waiting(
    frontend: FrontEnd,
) -> None:
    job_id = await queued(frontend, 1)
    await finish_with_images(frontend, job_id, [noise_png(64, 64)])
    frontend.start_delivery()  # no sink for the platform: nothing refused, the event waits
    await asyncio.sleep(0.5)
    [waiting] = await frontend.events.redis.xpending_range(
        EVENTS_STREAM, FRONTEND_GROUP, "-", "+", 10
    )
    assert await frontend.events.delivery_failures(waiting["message_id"].decode()) == 0
