"""What the front end asks Redis to deliver one worker event: the read and one
acknowledgement, nothing more (issue 19, the queue overhead per generation).

The real front end (SQLite, the core, the embedded Redis); the event consumer's client
counts its round trips. Counted, not timed: it holds on a loaded machine too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.redis_round_trips import counting_client
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobProgress, JobQueued
from stylebot.delivery_loop import EventDelivery
from stylebot.queue.events import EventConsumer, EventPublisher
from stylebot.queue.payloads import JobEvent

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1")


async def test_an_event_costs_its_read_and_one_acknowledgement(frontend: FrontEnd) -> None:
    queued = await frontend.bot.handle(Imagine(ME, "a quiet harbour", seed=1, steps=4))
    assert isinstance(queued, JobQueued), queued
    counted, trips = counting_client(Path(frontend.redis_url.removeprefix("unix://")))
    inbox = Inbox()
    delivery = EventDelivery(frontend.bot, EventConsumer(counted, "counted"))
    delivery.add_sink("test", inbox)
    delivery.start_delivery()
    try:
        await trips.until_sent("XREADGROUP")  # joined, waiting for events
        trips.clear()

        await EventPublisher(frontend.events.redis).publish(
            JobEvent(queued.job_id, "generate", "progress", step=1, total=4)
        )
        note = await inbox.next((JobProgress,), within=10)
        assert note.reply.job_id == queued.job_id
        # The acknowledgement, with the event's delivery state: one pipeline.
        await trips.until_sent("MULTI")

        # Reads block for new events (one or more, as time passes); besides them, only
        # that acknowledgement. The read of a failure count nobody used was a round trip
        # on every event's way, and the acknowledgement two.
        besides_reads = [c for c in trips.commands if c != "XREADGROUP"]
        assert besides_reads == ["MULTI"], trips.commands
    finally:
        await delivery.stop_delivery()
        await counted.aclose()
