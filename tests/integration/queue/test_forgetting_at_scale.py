"""Forgetting jobs costs what the forgotten jobs have, not what the queue holds: on the
real embedded Redis, the events stream is never read to find a job's entries (anyone's
jobs fill it), and nothing of a forgotten job comes back or stays without an expiry."""

from __future__ import annotations

from arq.connections import ArqRedis

from stylebot.queue.events import EVENTS_KEEP_S, FRONTEND_GROUP, EventConsumer, EventPublisher
from stylebot.queue.forgetting import forget_jobs
from stylebot.queue.keys import (
    EVENTS_STREAM,
    delivery_failures_key,
    job_end_key,
    job_events_key,
)
from stylebot.queue.payloads import JobEvent, TrainResult
from stylebot.queue.recovery import remember_end

FORGOTTEN = "generate-forgotten"
OTHERS = 20_000


async def stream_reads(redis: ArqRedis) -> int:
    """Commands run since the last CONFIG RESETSTAT that read entries of a stream."""
    stats = await redis.info("commandstats")
    readers = ("xrange", "xrevrange", "xread", "xreadgroup", "xautoclaim", "xclaim")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in readers)


async def test_forgetting_a_job_reads_none_of_the_stream_and_takes_its_counts_along(
    redis: ArqRedis,
) -> None:
    consumer = EventConsumer(redis, "fe-1")
    await consumer.ensure_group()
    # Other people's jobs filled the stream.
    for start in range(0, OTHERS, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, start + 5000):
                pipe.xadd(
                    EVENTS_STREAM, {"event": JobEvent(f"g-{i}", "generate", "queued").to_json()}
                )
            await pipe.execute()
    publisher = EventPublisher(redis)
    for step in range(3):
        await publisher.publish(JobEvent(FORGOTTEN, "generate", "progress", step=step))
    # Read but not delivered: one failed delivery counted for each.
    await consumer.read(block_ms=100, count=OTHERS + 10)
    mine = [
        _id.decode()
        for _id, fields in await redis.xrevrange(EVENTS_STREAM, count=3)
        if FORGOTTEN.encode() in fields[b"event"]
    ]
    assert len(mine) == 3
    for message_id in mine:
        assert await consumer.delivery_failed(message_id) == 1
    assert 0 < await redis.ttl(job_events_key(FORGOTTEN)) <= EVENTS_KEEP_S
    assert 0 < await redis.ttl(delivery_failures_key(mine[0])) <= EVENTS_KEEP_S

    await redis.config_resetstat()
    await forget_jobs(redis, [FORGOTTEN])

    assert await stream_reads(redis) == 0
    assert await redis.xlen(EVENTS_STREAM) == OTHERS
    assert await redis.exists(job_events_key(FORGOTTEN)) == 0
    assert await redis.exists(*(delivery_failures_key(m) for m in mine)) == 0
    assert [await consumer.delivery_failures(m) for m in mine] == [0, 0, 0]
    # Acknowledged, so the group names only the others' entries as pending.
    assert (await redis.xpending(EVENTS_STREAM, FRONTEND_GROUP))["pending"] == OTHERS


async def test_a_late_report_does_not_bring_a_forgotten_training_result_back(
    redis: ArqRedis,
) -> None:
    job_id = "train-forgotten"
    result = TrainResult(lora_key="d" * 64, steps=4, final_loss=0.1, seconds=1.0)
    trained = JobEvent(job_id, "train", "finished", result=result.to_dict())
    await remember_end(redis, trained)
    await EventPublisher(redis).publish_end(trained)  # still there: marked told
    assert await redis.hget(job_end_key(job_id), "reported") == b"1"

    # The front end forgets the job before a worker's report lands.
    await forget_jobs(redis, [job_id])
    await EventPublisher(redis).publish_end(trained)

    assert await redis.exists(job_end_key(job_id)) == 0


async def test_entries_written_before_the_index_existed_are_found_after_an_upgrade(
    redis: ArqRedis,
) -> None:
    # What an older stylebot wrote: plain entries, no index beside them.
    for step in range(3):
        event = JobEvent(FORGOTTEN, "generate", "progress", step=step)
        await redis.xadd(EVENTS_STREAM, {"event": event.to_json()})
    await redis.xadd(EVENTS_STREAM, {"event": JobEvent("g-other", "generate", "queued").to_json()})

    await EventConsumer(redis, "fe-1").ensure_group()  # the upgraded front end starts
    await forget_jobs(redis, [FORGOTTEN])

    left = [fields[b"event"] for _id, fields in await redis.xrange(EVENTS_STREAM)]
    assert len(left) == 1
    assert b"g-other" in left[0]
