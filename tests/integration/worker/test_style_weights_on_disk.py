"""A worker fetches a style's weights from the blob store once and generates from its own
intact copy after that: with S3, each generation in a style used to download it again."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from tests.support.damage import flip_byte
from tests.support.tiny_styles import TRIGGER, quick_lora_bytes

from stylebot.bootstrap import FrontEnd
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import GenerateJob, JobEvent
from stylebot.queue.worker import build_worker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _job(job_id: str, lora_key: str) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt="a small boat",
        negative_prompt="",
        seed=3,
        steps=2,
        guidance=7.5,
        width=256,  # the watermark needs 256x256 at least
        height=256,
        output_ids=(hashlib.sha256(job_id.encode()).hexdigest()[:12],),
        style_id=1,
        style_name="style1",
        lora_key=lora_key,
        trigger=TRIGGER,
        owner=f"test:{job_id}",
    )


async def _generate(frontend: FrontEnd, tiny_engine: Any, job: GenerateJob) -> JobEvent:
    await frontend.queue.enqueue_generate(job)
    worker = build_worker(
        frontend.settings, frontend.redis_url, burst=True, handle_signals=False, engine=tiny_engine
    )
    async with asyncio.timeout(120):
        await worker.async_run()
    await worker.close()
    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    [last] = [e for e in events if e.job_id == job.job_id and e.kind in ("finished", "failed")]
    return last


async def test_a_style_used_again_is_not_fetched_again(
    frontend: FrontEnd, tiny_engine: Any, tmp_path: Path
) -> None:
    key = await frontend.blobs.put(quick_lora_bytes(tiny_engine.pipeline, tmp_path))
    first = await _generate(frontend, tiny_engine, _job("first", key))
    assert first.kind == "finished"
    # Only the worker's copy is left: the second job cannot have read the store. (A
    # deleted style leaves workers by revocation, tests/integration/queue/test_cache_revocation.py.)
    await frontend.blobs.delete(key)
    again = await _generate(frontend, tiny_engine, _job("again", key))
    assert again.kind == "finished", again.error
    assert first.generate_result().images[0].seed == again.generate_result().images[0].seed


async def test_a_damaged_copy_on_the_worker_is_fetched_again(
    frontend: FrontEnd, tiny_engine: Any, tmp_path: Path
) -> None:
    data = quick_lora_bytes(tiny_engine.pipeline, tmp_path)
    key = await frontend.blobs.put(data)
    assert (await _generate(frontend, tiny_engine, _job("first", key))).kind == "finished"
    copy = tiny_engine.cache.path("loras", key)
    flip_byte(copy)
    again = await _generate(frontend, tiny_engine, _job("again", key))
    assert again.kind == "finished", again.error
    assert copy.read_bytes() == data  # never loaded damaged: replaced by the store's
