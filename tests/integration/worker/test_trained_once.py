"""A retried training job whose earlier attempt already finished is not trained again."""

from __future__ import annotations

import asyncio

import pytest
from arq.jobs import Job as ArqJob

from stylebot.bootstrap import FrontEnd
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import EVENTS_STREAM, QUEUE_NAME
from stylebot.queue.payloads import JobEvent, TrainJob, TrainResult
from stylebot.queue.recovery import (
    finished_training,
    mark_training_reported,
    remember_finished_training,
)
from stylebot.queue.worker import build_worker

pytestmark = pytest.mark.slow

RESULT = TrainResult(lora_key="ab" * 32, steps=8, final_loss=0.25, seconds=3.0)


async def _run_once(frontend: FrontEnd, job_id: str) -> object:
    await frontend.queue.enqueue_train(TrainJob(job_id, 1, "sbt style", ("cd" * 32,)))
    worker = build_worker(
        frontend.settings,
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=object(),  # training must not run: it would fail on this
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


async def test_an_unreported_result_is_reported_and_returned_without_training(
    frontend: FrontEnd,
) -> None:
    redis = frontend.queue.redis
    # The first attempt stored its result and died before it told anyone.
    await remember_finished_training(redis, "train-once", RESULT)
    # Through arq's JSON, so compared as a TrainResult (tuples come back as lists).
    assert TrainResult.from_dict(await _run_once(frontend, "train-once")) == RESULT  # type: ignore[arg-type]
    finished = await _finished_events(frontend, "train-once")
    assert [e.train_result() for e in finished] == [RESULT]
    assert await finished_training(redis, "train-once") == (RESULT, True)


async def test_a_reported_result_is_returned_without_a_second_event(frontend: FrontEnd) -> None:
    redis = frontend.queue.redis
    # The first attempt told the front end, then died before arq recorded the job.
    await remember_finished_training(redis, "train-told", RESULT)
    await mark_training_reported(redis, "train-told")
    # Through arq's JSON, so compared as a TrainResult (tuples come back as lists).
    assert TrainResult.from_dict(await _run_once(frontend, "train-told")) == RESULT  # type: ignore[arg-type]
    assert await _finished_events(frontend, "train-told") == []
