"""With mixed_style_batches on, jobs in different styles share one pipeline call."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.integration.engine.test_lora_files import other_architecture_lora

from stylebot.bootstrap import FrontEnd
from stylebot.queue.job_bodies import mixed_style_batches
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import GenerateJob, JobEvent, TrainSettings
from stylebot.queue.worker import build_worker
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STEPS = 2
TRIGGER = "sks style"


@pytest.fixture(scope="module")
def style_weights(tiny_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Two styles' LoRA files, trained on the session engine's pipeline."""
    root = tmp_path_factory.mktemp("mixed-worker")
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(2)]
    settings = TrainSettings(steps=3, resolution=64, rank=4, learning_rate=1e-2)
    return [
        train_lora(
            tiny_engine.pipeline, images, TRIGGER, replace(settings, seed=seed), root / str(seed)
        ).weights_path.read_bytes()
        for seed in range(2)
    ]


def _job(job_id: str, seed: int, style: tuple[int, str] | None) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt=f"a small boat {seed}",
        negative_prompt="",
        seed=seed,
        steps=STEPS,
        guidance=7.5,
        # The watermark needs 256x256 at least.
        width=256,
        height=256,
        output_ids=(hashlib.sha256(job_id.encode()).hexdigest()[:12],),
        style_id=None if style is None else style[0],
        style_name=None if style is None else f"style{style[0]}",
        lora_key=None if style is None else style[1],
        trigger=None if style is None else TRIGGER,
        owner=f"test:{job_id}",
    )


async def _run_jobs(
    frontend: FrontEnd, tiny_engine: Any, style_weights: list[bytes], mixed: str
) -> tuple[int, dict[str, Any]]:
    """Three styles (two LoRAs and none) in four jobs: UNet calls and results."""
    keys = [await frontend.blobs.put(data) for data in style_weights]
    jobs = [
        _job("a1", 1, (1, keys[0])),
        _job("b1", 2, (2, keys[1])),
        _job("plain", 3, None),
        _job("a2", 4, (1, keys[0])),
    ]
    for job in jobs:
        await frontend.queue.enqueue_generate(job)
    unet_calls = 0

    def count(*_: object) -> None:
        nonlocal unet_calls
        unet_calls += 1

    hook = tiny_engine.pipeline.unet.register_forward_hook(count)
    try:
        settings = frontend.settings.replace(max_batch_size=4, mixed_style_batches=mixed)
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
    assert sorted(finished) == sorted(job.job_id for job in jobs)
    assert len({result.images[0].blob_key for result in finished.values()}) == len(jobs)
    return unet_calls, finished


async def test_different_styles_share_a_call_when_mixed_batches_are_on(
    frontend: FrontEnd, tiny_engine: Any, style_weights: list[bytes]
) -> None:
    unet_calls, _ = await _run_jobs(frontend, tiny_engine, style_weights, "on")
    # Three styles in at most two calls (the first job may start alone): the
    # other three, in two or three styles, shared one.
    assert unet_calls <= 2 * STEPS


async def test_different_styles_never_share_a_call_when_mixed_batches_are_off(
    frontend: FrontEnd, tiny_engine: Any, style_weights: list[bytes]
) -> None:
    unet_calls, _ = await _run_jobs(frontend, tiny_engine, style_weights, "off")
    assert unet_calls >= 3 * STEPS  # a call per style at least


async def test_a_style_that_does_not_fit_fails_alone_in_a_mixed_batch(
    frontend: FrontEnd,
    tiny_engine: Any,
    style_weights: list[bytes],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = await frontend.blobs.put(style_weights[0])
    foreign = await frontend.blobs.put(other_architecture_lora(tmp_path).read_bytes())
    jobs = [
        _job("good", 1, (1, good)),
        _job("foreign", 2, (2, foreign)),
        _job("plain", 3, None),
        _job("good2", 4, (1, good)),
    ]
    for job in jobs:
        await frontend.queue.enqueue_generate(job)
    settings = frontend.settings.replace(max_batch_size=4, mixed_style_batches="on")
    worker = build_worker(
        settings, frontend.redis_url, burst=True, handle_signals=False, engine=tiny_engine
    )
    async with asyncio.timeout(120):
        await worker.async_run()
    await worker.close()
    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    finished = {e.job_id for e in events if e.kind == "finished"}
    failed = {e.job_id: e.error for e in events if e.kind == "failed"}
    assert finished == {"good", "plain", "good2"}
    assert list(failed) == ["foreign"]
    assert "different base model" in str(failed["foreign"])
    assert "foreign" not in "".join(tiny_engine.generator.loaded_adapters)
    # Its result (the exception) was stored without a traceback in the log.
    assert "error serializing result" not in caplog.text


def test_auto_mixes_styles_on_cuda_only(frontend: FrontEnd, tiny_engine: Any) -> None:
    settings = frontend.settings
    assert settings.mixed_style_batches == "auto"
    assert tiny_engine.device_type == "cpu"
    assert not mixed_style_batches(settings, tiny_engine)
    assert mixed_style_batches(settings.replace(mixed_style_batches="on"), tiny_engine)

    class OnCuda:
        device_type = "cuda"

    assert mixed_style_batches(settings, OnCuda())
    assert not mixed_style_batches(settings.replace(mixed_style_batches="off"), OnCuda())


def test_an_unknown_mixed_style_batches_value_is_refused(tmp_path: Path) -> None:
    from stylebot.config import load_settings
    from stylebot.setting_rules import SettingsError

    with pytest.raises(
        SettingsError, match=r"STYLEBOT_MIXED_STYLE_BATCHES=sometimes: must be one of auto, on, off"
    ):
        load_settings(environ={"STYLEBOT_MIXED_STYLE_BATCHES": "sometimes"}, data_dir=tmp_path)
