"""Owners take turns on the real queue: one user's burst does not block another user."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from stylebot.bootstrap import FrontEnd
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import GenerateJob, JobEvent
from stylebot.queue.worker import build_worker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _job(job_id: str, owner: str) -> GenerateJob:
    output_id = hashlib.sha256(job_id.encode()).hexdigest()[:12]
    return GenerateJob(
        job_id=job_id,
        prompt="a small boat",
        negative_prompt="",
        seed=1,
        steps=1,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=(output_id,),
        owner=owner,
    )


async def test_a_later_user_s_request_runs_before_an_earlier_user_s_backlog(
    frontend: FrontEnd, tiny_engine: Any
) -> None:
    burst = [f"ada{i}" for i in range(4)]
    for job_id in burst:
        await frontend.queue.enqueue_generate(_job(job_id, "test:ada"))
    await frontend.queue.enqueue_generate(_job("bea0", "test:bea"))

    # One request per pipeline call: the order of the calls is what is tested.
    unbatched = frontend.settings.replace(max_batch_size=1)
    worker = build_worker(
        unbatched,
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=tiny_engine,
    )
    async with asyncio.timeout(120):
        await worker.async_run()
    await worker.close()

    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    finished = [e.job_id for e in events if e.kind == "finished"]
    assert sorted(finished) == sorted([*burst, "bea0"])
    # Bea waits for one of Ada's jobs, not for all four.
    assert finished == ["ada0", "bea0", "ada1", "ada2", "ada3"]
