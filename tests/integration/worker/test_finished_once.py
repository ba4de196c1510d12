"""A job whose earlier run finished is not done again: its result stands, told once.

The earlier run kept its finished event in Redis before telling it, then stopped or
died before arq recorded the job (a SIGTERM or SIGKILL at that moment): arq runs the
job again, and that run must neither train, generate, caption nor compare a second
time, nor send its user the result twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from arq.jobs import Job as ArqJob

from stylebot.bootstrap import FrontEnd
from stylebot.queue.connection import deserialize_job
from stylebot.queue.events import EventPublisher
from stylebot.queue.keys import EVENTS_STREAM, QUEUE_NAME, job_end_key
from stylebot.queue.payloads import (
    CaptionJob,
    CaptionResult,
    CompareJob,
    CompareResult,
    GeneratedImage,
    GenerateJob,
    GenerateResult,
    JobEvent,
    JobKind,
    TrainJob,
    TrainResult,
)
from stylebot.queue.recovery import earlier_end, remember_end
from stylebot.queue.worker import build_worker

pytestmark = pytest.mark.slow

KEY = "cd" * 32
ENDS: dict[JobKind, JobEvent] = {
    "train": JobEvent(
        "train-once",
        "train",
        "finished",
        step=8,
        result=TrainResult(lora_key="ab" * 32, steps=8, final_loss=0.25, seconds=3.0).to_dict(),
    ),
    "generate": JobEvent(
        "generate-once",
        "generate",
        "finished",
        result=GenerateResult((GeneratedImage("out-1", "ef" * 32, 5, "0" * 16),), 2.0).to_dict(),
    ),
    "caption": JobEvent(
        "caption-once",
        "caption",
        "finished",
        step=1,
        total=1,
        result=CaptionResult(((KEY, "a red boat"),), 1.0).to_dict(),
    ),
    "compare": JobEvent(
        "compare-once", "compare", "finished", result=CompareResult((), 1.0).to_dict()
    ),
}


async def _enqueue(frontend: FrontEnd, kind: JobKind, job_id: str) -> None:
    queue = frontend.queue
    if kind == "train":
        await queue.enqueue_train(TrainJob(job_id, 1, "sbt style", (KEY,)))
    elif kind == "generate":
        await queue.enqueue_generate(
            GenerateJob(job_id, "a boat", "", 5, 4, 7.5, 64, 64, output_ids=("out-1",))
        )
    elif kind == "caption":
        await queue.enqueue_caption(CaptionJob(job_id, (KEY,)))
    else:
        await queue.enqueue_compare(CompareJob(job_id, (KEY, KEY)))


async def _run_once(frontend: FrontEnd, job_id: str) -> Any:
    """Run the queued job in a worker; what arq records of it."""
    worker = build_worker(
        frontend.settings,
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=object(),  # no work may run: it would fail on this
    )
    async with asyncio.timeout(30):
        await worker.async_run()
    await worker.close()
    redis = frontend.queue.redis
    arq_job = ArqJob(job_id, redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job)
    return await arq_job.result(timeout=5)


async def _finished_events(frontend: FrontEnd, job_id: str) -> list[JobEvent]:
    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    return [e for e in events if e.job_id == job_id and e.kind == "finished"]


@pytest.mark.parametrize("kind", list(ENDS))
async def test_an_untold_end_is_told_once_and_returned_without_the_work(
    frontend: FrontEnd, kind: JobKind
) -> None:
    end = ENDS[kind]
    await _enqueue(frontend, kind, end.job_id)
    # The earlier run kept its end and stopped before it told anyone.
    await remember_end(frontend.queue.redis, end)
    # Through arq's JSON, so compared as JSON (tuples come back as lists).
    assert (
        JobEvent(
            end.job_id, kind, "finished", result=await _run_once(frontend, end.job_id)
        ).to_json()
        == JobEvent(end.job_id, kind, "finished", result=end.result).to_json()
    )
    assert [e.to_json() for e in await _finished_events(frontend, end.job_id)] == [end.to_json()]
    # arq recorded the job: its result is the record now.
    assert await frontend.queue.redis.exists(job_end_key(end.job_id)) == 0


@pytest.mark.parametrize("kind", list(ENDS))
async def test_a_told_end_is_returned_without_a_second_event(
    frontend: FrontEnd, kind: JobKind
) -> None:
    end = ENDS[kind]
    redis = frontend.queue.redis
    await _enqueue(frontend, kind, end.job_id)
    # The earlier run told the front end, then stopped before arq recorded the job.
    await remember_end(redis, end)
    await EventPublisher(redis).publish_end(end)
    found = await earlier_end(redis, end.job_id)
    assert found is not None
    assert found.told
    assert found.event.to_json() == end.to_json()
    result = await _run_once(frontend, end.job_id)
    assert (
        JobEvent(end.job_id, kind, "finished", result=result).to_json()
        == JobEvent(end.job_id, kind, "finished", result=end.result).to_json()
    )
    # Only the earlier run's event: none from this one.
    assert [e.to_json() for e in await _finished_events(frontend, end.job_id)] == [end.to_json()]
    assert await redis.exists(job_end_key(end.job_id)) == 0


@pytest.mark.parametrize("kind", ["generate", "caption", "compare"])
async def test_an_end_told_without_a_kept_record_is_kept_as_told(
    frontend: FrontEnd, kind: JobKind
) -> None:
    """Only training keeps its end before telling it (its checkpoint goes in between):
    the others keep it in the step that tells it, so a run after one that told its end
    and stopped before arq recorded the job still neither redoes nor retells it."""
    end = ENDS[kind]
    redis = frontend.queue.redis
    await _enqueue(frontend, kind, end.job_id)
    await EventPublisher(redis).publish_end(end)
    found = await earlier_end(redis, end.job_id)
    assert found is not None
    assert found.told
    assert found.event.to_json() == end.to_json()
    assert await redis.ttl(job_end_key(end.job_id)) > 0
    result = await _run_once(frontend, end.job_id)
    assert (
        JobEvent(end.job_id, kind, "finished", result=result).to_json()
        == JobEvent(end.job_id, kind, "finished", result=end.result).to_json()
    )
    assert [e.to_json() for e in await _finished_events(frontend, end.job_id)] == [end.to_json()]


async def test_two_runs_of_a_training_tell_one_end(frontend: FrontEnd) -> None:
    """The first run's lease lapsed (its worker cut off from Redis) and a second worker
    ran the job too: both keep and tell their end; the user hears of it once."""
    redis = frontend.queue.redis
    first = ENDS["train"]
    assert first.result is not None
    second_result = TrainResult.from_dict(first.result)
    second = dataclasses.replace(
        first, result=dataclasses.replace(second_result, lora_key="9" * 64).to_dict()
    )
    await _enqueue(frontend, "train", first.job_id)
    publisher = EventPublisher(redis)
    for run in (first, second):  # each as `report_finished` does for a training
        await remember_end(redis, run)
        await publisher.publish_end(run)
    assert [e.to_json() for e in await _finished_events(frontend, first.job_id)] == [
        first.to_json()
    ]
    found = await earlier_end(redis, first.job_id)
    assert found is not None
    assert found.told
    assert found.event.to_json() == first.to_json()


async def test_an_end_told_after_arq_recorded_the_job_is_not_told_again(
    frontend: FrontEnd,
) -> None:
    """A run whose lease lapsed ends after another run of the job told its end and arq
    recorded it (its job and end record gone): it tells nothing."""
    redis = frontend.queue.redis
    end = ENDS["generate"]
    await _enqueue(frontend, "generate", end.job_id)
    await EventPublisher(redis).publish_end(end)  # the second run told it...
    await _run_once(frontend, end.job_id)  # ...and arq recorded the job
    assert await redis.exists(job_end_key(end.job_id)) == 0
    late = dataclasses.replace(
        end,
        result=GenerateResult((GeneratedImage("out-1", "77" * 32, 5, "0" * 16),), 9.0).to_dict(),
    )
    await EventPublisher(redis).publish_end(late)
    assert [e.to_json() for e in await _finished_events(frontend, end.job_id)] == [end.to_json()]
    assert await redis.exists(job_end_key(end.job_id)) == 0


async def test_an_end_is_told_once_however_often_it_is_sent(frontend: FrontEnd) -> None:
    """A retry after a lost reply, or a run after one killed between telling the end and
    noting it told, sends it again: the stream gets it once."""
    end = ENDS["generate"]
    redis = frontend.queue.redis
    await _enqueue(frontend, "generate", end.job_id)
    await remember_end(redis, end)
    publisher = EventPublisher(redis)
    for _ in range(3):
        await publisher.publish_end(end)
    assert [e.to_json() for e in await _finished_events(frontend, end.job_id)] == [end.to_json()]


async def test_a_training_result_kept_by_an_older_worker_is_still_told(
    frontend: FrontEnd,
) -> None:
    """Before the finished event was kept, a training kept only its result."""
    end = ENDS["train"]
    assert end.result is not None
    await _enqueue(frontend, "train", end.job_id)
    old_record = {"result": TrainResult.from_dict(end.result).to_json(), "reported": "0"}
    await frontend.queue.redis.hset(job_end_key(end.job_id), mapping=old_record)  # type: ignore[misc]
    result = await _run_once(frontend, end.job_id)
    assert TrainResult.from_dict(result) == TrainResult.from_dict(end.result)
    told = await _finished_events(frontend, end.job_id)
    assert [e.train_result() for e in told] == [TrainResult.from_dict(end.result)]
