"""SDXL conditions a request without a negative prompt on zeros
(`force_zeros_for_empty_prompt`); in a call where another request has a
negative prompt it would get the encoded "" instead. Such requests are not
batched together, so an image does not depend on its batch-mates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stylebot.engine.generation_request import GenerationRequest, generation_batch_key
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import GenerateJob

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PLAIN = GenerationRequest("a red house", seed=5, steps=3, width=64, height=64)
WITH_NEGATIVE = GenerationRequest(
    "a blue car", negative_prompt="blurry", seed=9, steps=3, width=64, height=64
)
# Batched kernels may round differently from a batch of one (test_generator).
BATCH_TOLERANCE = 2


def _pixels(image: object) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(scope="module")
def generator(tiny_sdxl_model_dir: Path) -> Generator:
    return Generator(load_pipeline(str(tiny_sdxl_model_dir), device="cpu"))


def test_an_sdxl_image_is_the_same_alone_and_beside_a_negative_prompt(
    generator: Generator,
) -> None:
    assert generator.pipeline.config.force_zeros_for_empty_prompt
    alone = _pixels(generator.generate(PLAIN)[0])
    negative_alone = _pixels(generator.generate(WITH_NEGATIVE)[0])
    plain, negative = generator.generate_batch([PLAIN, WITH_NEGATIVE])
    assert np.abs(_pixels(plain[0]) - alone).max() <= BATCH_TOLERANCE
    assert np.abs(_pixels(negative[0]) - negative_alone).max() <= BATCH_TOLERANCE
    # The results stay in the requests' order.
    swapped = generator.generate_batch([WITH_NEGATIVE, replace(PLAIN, count=2)])
    assert [len(images) for images in swapped] == [1, 2]
    assert np.abs(_pixels(swapped[1][0]) - alone).max() <= BATCH_TOLERANCE


def _job(negative_prompt: str, job_id: str) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt="a red house",
        negative_prompt=negative_prompt,
        seed=5,
        steps=3,
        guidance=7.5,
        width=64,
        height=64,
        output_ids=(f"out-{job_id}",),
        style_id=1,
        lora_key="lora",
    )


def test_jobs_with_and_without_a_negative_prompt_are_not_batched_together() -> None:
    plain, other_plain = _job("", "a"), _job("", "b")
    negative, other_negative = _job("blurry", "c"), _job("text, watermark", "d")
    for mixed_styles in (False, True):
        key = generation_batch_key(plain, mixed_styles=mixed_styles)
        assert generation_batch_key(other_plain, mixed_styles=mixed_styles) == key
        negative_key = generation_batch_key(negative, mixed_styles=mixed_styles)
        assert negative_key != key
        # Different negative prompts still share a call: each is encoded per request.
        assert generation_batch_key(other_negative, mixed_styles=mixed_styles) == negative_key
