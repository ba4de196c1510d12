"""Worker events on the Redis stream: pushed, read at once, redelivered if unacknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tests.support.redis_round_trips import counting_client

from stylebot.queue.events import EVENTS_KEEP_S, FRONTEND_GROUP, EventConsumer, EventPublisher
from stylebot.queue.keys import EVENTS_STREAM, delivery_failures_key
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_server import EmbeddedRedis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path) as running:
        yield running


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    connection = Redis(unix_socket_path=str(server.socket_path))
    yield connection
    await connection.aclose()


async def test_a_published_event_reaches_a_blocked_reader_promptly(client: Redis) -> None:
    consumer = EventConsumer(client, "front-1")
    await consumer.ensure_group()
    reader = asyncio.create_task(consumer.read(block_ms=5000))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await EventPublisher(client).publish(JobEvent("job-1", "train", "progress", step=2, total=9))
    [(_, event)] = await reader
    assert loop.time() - sent_at < 0.5  # pushed, not polled
    assert (event.job_id, event.step, event.total) == ("job-1", 2, 9)


async def test_unacknowledged_events_are_redelivered_to_the_next_front_end(client: Redis) -> None:
    publisher = EventPublisher(client)
    first = EventConsumer(client, "front-1")
    await first.ensure_group()
    await publisher.publish(JobEvent("job-1", "generate", "started"))
    await publisher.publish(JobEvent("job-2", "generate", "started"))
    read = await first.read(block_ms=100)
    assert [e.job_id for _, e in read] == ["job-1", "job-2"]
    await first.ack(read[0][0])  # the process dies before acknowledging job-2

    restarted = EventConsumer(client, "front-2")
    redelivered = await restarted.unacknowledged()
    assert [e.job_id for _, e in redelivered] == ["job-2"]
    assert await restarted.read(block_ms=50) == []


async def test_events_older_than_they_are_kept_leave_the_stream(client: Redis) -> None:
    """Events carry what users asked for: none outlives EVENTS_KEEP_S, read or not."""
    old_ms = int(time.time() * 1000) - (EVENTS_KEEP_S + 60) * 1000
    old = JobEvent("job-old", "train", "progress", step=1, total=9)
    await client.xadd(EVENTS_STREAM, {"event": old.to_json()}, id=f"{old_ms}-0")
    recent = JobEvent("job-recent", "train", "progress", step=1, total=9)
    await client.xadd(EVENTS_STREAM, {"event": recent.to_json()})

    await EventPublisher(client).publish(JobEvent("job-new", "train", "progress", step=2, total=9))

    kept = [JobEvent.from_json(f[b"event"]).job_id for _id, f in await client.xrange(EVENTS_STREAM)]
    assert kept == ["job-recent", "job-new"]


async def test_events_trimmed_while_unacknowledged_leave_no_bookkeeping(client: Redis) -> None:
    """A batch of nothing but trimmed entries does not hide the unacknowledged events
    after it, and the trimmed ones' failure counts go with them."""
    publisher = EventPublisher(client)
    first = EventConsumer(client, "front-1")
    await first.ensure_group()
    for n in range(4):
        await publisher.publish(JobEvent(f"job-{n}", "generate", "started"))
    read = await first.read(block_ms=100)
    for message_id, _event in read:
        await first.delivery_failed(message_id)
    trimmed = [message_id for message_id, _event in read[:2]]
    await client.xdel(EVENTS_STREAM, *trimmed)  # as the stream's trimming does

    restarted = EventConsumer(client, "front-2")
    redelivered = await restarted.unacknowledged(count=2)

    assert [e.job_id for _, e in redelivered] == ["job-2", "job-3"]
    counted = [m for m, _event in read if await client.exists(delivery_failures_key(m))]
    assert sorted(counted) == sorted(message_id for message_id, _event in read[2:])
    pending = await client.xpending(EVENTS_STREAM, FRONTEND_GROUP)
    assert pending["pending"] == 2


async def test_an_undecodable_event_is_acknowledged_when_dropped(client: Redis) -> None:
    consumer = EventConsumer(client, "front-1")
    await consumer.ensure_group()
    broken = (await client.xadd(EVENTS_STREAM, {"event": "{not json"})).decode()
    await client.incr(delivery_failures_key(broken))
    await EventPublisher(client).publish(JobEvent("job-1", "generate", "started"))

    [(_, event)] = await consumer.read(block_ms=100)

    assert event.job_id == "job-1"
    assert broken not in [p["message_id"].decode() for p in await _pending(client)]
    assert not await client.exists(delivery_failures_key(broken))


async def _pending(client: Redis) -> list[dict]:  # type: ignore[type-arg]
    return await client.xpending_range(EVENTS_STREAM, FRONTEND_GROUP, "-", "+", 10)


async def test_publishing_an_event_is_one_round_trip(server: EmbeddedRedis) -> None:
    """Every result's event is on its way to the member: the entry, its job's index and
    the trim by age go in one request (issue 19: the trim was a second one)."""
    counted, trips = counting_client(server.socket_path)
    try:
        await counted.ping()  # the connection's own handshake is not the event's
        trips.clear()
        await EventPublisher(counted).publish(JobEvent("job-1", "generate", "finished"))
        assert trips.commands == ["EVAL"]
        [(_id, fields)] = await counted.xrange(EVENTS_STREAM)
        assert JobEvent.from_json(fields[b"event"]).job_id == "job-1"
    finally:
        await counted.aclose()


async def test_acknowledging_an_event_is_one_round_trip(server: EmbeddedRedis) -> None:
    """The acknowledgement and the event's delivery state go together (issue 19)."""
    counted, trips = counting_client(server.socket_path)
    try:
        consumer = EventConsumer(counted, "front-1")
        await consumer.ensure_group()
        await EventPublisher(counted).publish(JobEvent("job-1", "generate", "finished"))
        [(message_id, _event)] = await consumer.read(block_ms=100)
        await consumer.delivery_failed(message_id)
        await consumer.part_delivered(message_id, "0/image-1")
        trips.clear()

        await consumer.ack(message_id)

        assert trips.count == 1, trips.commands
        assert await _pending(counted) == []
        assert not await counted.exists(delivery_failures_key(message_id))
        assert await consumer.delivered_parts(message_id) == {}
    finally:
        await counted.aclose()
