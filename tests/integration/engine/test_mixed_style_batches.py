"""Requests in different styles share one pipeline call through PEFT's per-sample adapters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from diffusers import StableDiffusionPipeline
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# As for same-style batches (test_generator.py): batched kernels round a
# little differently from a batch of one.
BATCH_TOLERANCE = 2


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def two_styles(
    pipeline: StableDiffusionPipeline, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LoraWeights, LoraWeights]:
    root = tmp_path_factory.mktemp("mixed")
    first = train_lora(pipeline, reference_images(), TRIGGER, STRONG, root / "a").weights_path
    second_settings = replace(STRONG, seed=1, rank=8)
    second = train_lora(
        pipeline, reference_images(), TRIGGER, second_settings, root / "b"
    ).weights_path
    return LoraWeights("a", first), LoraWeights("b", second)


def _generator(pipeline: StableDiffusionPipeline, cache: int) -> Iterator[Generator]:
    made = Generator(pipeline, max_loaded_adapters=cache)
    yield made
    for slot in made.adapters.adapter_slots.values():
        pipeline.delete_adapters([slot])


@pytest.fixture
def generator(pipeline: StableDiffusionPipeline) -> Iterator[Generator]:
    yield from _generator(pipeline, cache=4)


def _unet_calls(pipeline: StableDiffusionPipeline) -> tuple[list[int], object]:
    batch_sizes: list[int] = []
    hook = pipeline.unet.register_forward_hook(
        lambda _module, args, _output: batch_sizes.append(len(args[0]))
    )
    return batch_sizes, hook


@pytest.mark.parametrize("guidance", [7.5, 1.0], ids=["guided", "unguided"])
def test_a_mixed_batch_gives_each_request_its_image_alone(
    generator: Generator,
    pipeline: StableDiffusionPipeline,
    two_styles: tuple[LoraWeights, LoraWeights],
    guidance: float,
) -> None:
    """Two styles and no style in one call; guidance 7.5 doubles the UNet's batch, 1.0 not."""
    a, b = two_styles
    base = replace(REQUEST, guidance=guidance)
    mixed_requests = [
        (replace(base, seed=5), a),
        (replace(base, seed=9, prompt=f"{TRIGGER}, a quiet harbour"), b),
        (replace(base, seed=7, count=2), None),
        (replace(base, seed=5), b),
    ]
    batch_sizes, hook = _unet_calls(pipeline)
    try:
        mixed = generator.generate_mixed(mixed_requests)
    finally:
        hook.remove()  # type: ignore[attr-defined]
    images_in_call = 5
    doubled = 2 if guidance > 1 else 1
    assert batch_sizes == [images_in_call * doubled] * REQUEST.steps  # one call

    alone = [generator.generate(request, lora=lora) for request, lora in mixed_requests]
    assert [len(images) for images in mixed] == [1, 1, 2, 1]
    for mixed_images, solo_images in zip(mixed, alone, strict=True):
        for from_mixed, from_solo in zip(mixed_images, solo_images, strict=True):
            assert np.abs(pixels(from_mixed) - pixels(from_solo)).max() <= BATCH_TOLERANCE
    # Each style was applied to its own rows only: same seed, other style, other image.
    unstyled = pixels(generator.generate(replace(base, seed=5))[0])
    with_a, with_b = pixels(mixed[0][0]), pixels(mixed[3][0])
    assert np.abs(with_a - unstyled).mean() > 2.0
    assert np.abs(with_a - with_b).mean() > 2.0


def test_more_styles_than_the_cache_holds_are_made_style_by_style(
    pipeline: StableDiffusionPipeline, two_styles: tuple[LoraWeights, LoraWeights]
) -> None:
    a, b = two_styles
    requests = [(replace(REQUEST, seed=5), a), (replace(REQUEST, seed=6), b)]
    for generator in _generator(pipeline, cache=1):
        batch_sizes, hook = _unet_calls(pipeline)
        try:
            mixed = generator.generate_mixed(requests)
        finally:
            hook.remove()  # type: ignore[attr-defined]
        assert len(batch_sizes) == 2 * REQUEST.steps  # a call per style
        for (request, lora), images in zip(requests, mixed, strict=True):
            alone = pixels(generator.generate(request, lora=lora)[0])
            assert np.abs(pixels(images[0]) - alone).max() <= BATCH_TOLERANCE


def test_a_mixed_batch_refuses_requests_that_cannot_share_a_call(
    generator: Generator, two_styles: tuple[LoraWeights, LoraWeights]
) -> None:
    a, b = two_styles
    with pytest.raises(ValueError, match="same steps"):
        generator.generate_mixed([(REQUEST, a), (replace(REQUEST, width=128), b)])
    assert generator.loaded_adapters == ()
