"""Compatible generation requests that wait together share one pipeline call."""

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

STEPS = 2


def _job(job_id: str, seed: int, *, steps: int = STEPS) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt=f"a small boat {seed}",
        negative_prompt="",
        seed=seed,
        steps=steps,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=(hashlib.sha256(job_id.encode()).hexdigest()[:12],),
        owner=f"test:{job_id}",
    )


async def test_requests_waiting_together_are_batched_and_each_gets_its_image(
    frontend: FrontEnd, tiny_engine: Any
) -> None:
    same = [_job(f"same{i}", seed=i) for i in range(4)]
    other = _job("other", seed=9, steps=STEPS + 1)  # other steps: cannot share a call
    for job in [*same, other]:
        await frontend.queue.enqueue_generate(job)

    unet_calls = 0

    def count(*_: object) -> None:
        nonlocal unet_calls
        unet_calls += 1

    hook = tiny_engine.pipeline.unet.register_forward_hook(count)
    try:
        settings = frontend.settings.replace(max_batch_size=4)
        worker = build_worker(
            settings,
            frontend.redis_url,
            burst=True,
            handle_signals=False,
            engine=tiny_engine,
        )
        async with asyncio.timeout(120):
            await worker.async_run()
        await worker.close()
    finally:
        hook.remove()

    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    finished = {e.job_id: e.generate_result() for e in events if e.kind == "finished"}
    assert sorted(finished) == sorted(j.job_id for j in [*same, other])
    assert all(len(result.images) == 1 for result in finished.values())
    assert len({result.images[0].blob_key for result in finished.values()}) == 5
    # One by one: a UNet call per step per request (4 x 2 + 3 = 11). The first
    # request may start alone before the others arrive; the rest share calls.
    one_by_one = len(same) * STEPS + other.steps
    assert unet_calls <= 2 * STEPS + other.steps < one_by_one
