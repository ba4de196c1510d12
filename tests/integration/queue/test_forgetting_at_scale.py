"""Forgetting jobs costs what the forgotten jobs have, not what the queue holds: on the
real embedded Redis, the events stream is never read to find a job's entries (anyone's
jobs fill it), and nothing of a forgotten job comes back or stays without an expiry."""

from __future__ import annotations

from pathlib import Path

import pytest
from arq.connections import ArqRedis
from tests.support.stored_checkpoints import save_checkpoint

from stylebot.queue.events import EVENTS_KEEP_S, FRONTEND_GROUP, EventConsumer, EventPublisher
from stylebot.queue.forgetting import forget_jobs
from stylebot.queue.keys import (
    EVENTS_STREAM,
    checkpoint_key,
    delivery_failures_key,
    job_end_key,
    job_events_key,
)
from stylebot.queue.payloads import JobEvent, JobKind, TrainResult
from stylebot.queue.recovery import CheckpointStore, remember_end
from stylebot.storage.blobs import LocalBlobStore

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
    await redis.enqueue_job("train", {}, _job_id=job_id)  # the job, in arq
    result = TrainResult(lora_key="d" * 64, steps=4, final_loss=0.1, seconds=1.0)
    trained = JobEvent(job_id, "train", "finished", result=result.to_dict())
    await remember_end(redis, trained)
    await EventPublisher(redis).publish_end(trained)  # still there: marked told
    assert await redis.hget(job_end_key(job_id), "reported") == b"1"

    # The front end forgets the job before a worker's report lands.
    await forget_jobs(redis, [job_id])
    await EventPublisher(redis).publish_end(trained)

    assert await redis.exists(job_end_key(job_id)) == 0
    # Nor is the forgotten job's end put back on the stream.
    assert await redis.exists(job_events_key(job_id)) == 0
    assert await redis.xlen(EVENTS_STREAM) == 0


@pytest.mark.parametrize("kind", ["train", "generate"])
async def test_an_end_kept_after_the_job_was_forgotten_is_not_kept(
    redis: ArqRedis, kind: JobKind
) -> None:
    """A worker still running a job the front end forgot (its owner erased it) keeps no
    record of its end, however it keeps it: before telling (training) or as it tells."""
    job_id = f"{kind}-forgotten-while-running"
    await redis.enqueue_job(kind, {}, _job_id=job_id)
    await forget_jobs(redis, [job_id])
    result = TrainResult(lora_key="e" * 64, steps=4, final_loss=0.1, seconds=1.0)
    ended = JobEvent(job_id, kind, "finished", result=result.to_dict())
    if kind == "train":
        await remember_end(redis, ended)
        assert await redis.exists(job_end_key(job_id)) == 0
    await EventPublisher(redis).publish_end(ended)
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


async def test_a_checkpoint_saved_after_the_job_was_forgotten_is_not_kept(
    redis: ArqRedis, tmp_path: Path
) -> None:
    """A training the front end forgot (its owner erased it) may be saving a checkpoint
    as it happens: neither the record nor the state, trained on the erased images, stays."""
    job_id = "train-forgotten-while-saving"
    await redis.enqueue_job("train", {}, _job_id=job_id)
    blobs = LocalBlobStore(tmp_path / "blobs")
    checkpoints = CheckpointStore(redis, blobs)
    await save_checkpoint(checkpoints, job_id, b"state at step 10", 10, tmp_path)
    assert await redis.exists(checkpoint_key(job_id)) == 1
    for blob_key in await forget_jobs(redis, [job_id]):  # what the front end does
        await blobs.delete(blob_key)
    await save_checkpoint(checkpoints, job_id, b"state at step 20", 20, tmp_path)
    assert await redis.exists(checkpoint_key(job_id)) == 0
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
