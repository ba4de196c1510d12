"""Generation on the tiny model: reproducibility, LoRA styles and the adapter cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from peft.tuners.lora import LoraLayer
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import GenerationRequest, LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def lora_files(
    pipeline: StableDiffusionPipeline, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """Two different styles trained on the shared pipeline."""
    root = tmp_path_factory.mktemp("loras")
    first = train_lora(pipeline, reference_images(), TRIGGER, STRONG, root / "first")
    second_settings = TrainSettings(**{**STRONG.to_dict(), "seed": 1})
    second = train_lora(pipeline, reference_images(), TRIGGER, second_settings, root / "second")
    return first.weights_path, second.weights_path


@pytest.fixture
def generator(pipeline: StableDiffusionPipeline) -> Iterator[Generator]:
    made = Generator(pipeline, max_loaded_adapters=2)
    yield made
    # The pipeline is shared by the module: leave no adapters behind.
    for slot in made.adapters.adapter_slots.values():
        pipeline.delete_adapters([slot])


def _lora_param(pipeline: StableDiffusionPipeline, adapter: str) -> torch.nn.Parameter:
    for module in pipeline.unet.modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            return module.lora_A[adapter].weight
    raise AssertionError(f"adapter {adapter} is not loaded")


def test_same_seed_gives_identical_pixels_and_other_seeds_differ(generator: Generator) -> None:
    first = generator.generate(REQUEST)
    again = generator.generate(REQUEST)
    other = generator.generate(GenerationRequest(**{**REQUEST.__dict__, "seed": 12}))
    assert len(first) == 1
    assert first[0].size == (64, 64)
    assert np.array_equal(pixels(first[0]), pixels(again[0]))
    assert not np.array_equal(pixels(first[0]), pixels(other[0]))


def test_each_image_of_a_batch_is_reproducible_alone(generator: Generator) -> None:
    steps: list[tuple[int, int]] = []
    batch = generator.generate(
        GenerationRequest(**{**REQUEST.__dict__, "count": 2}),
        on_step=lambda step, total: steps.append((step, total)),
    )
    second_alone = generator.generate(GenerationRequest(**{**REQUEST.__dict__, "seed": 12}))
    assert len(batch) == 2
    assert np.array_equal(pixels(batch[1]), pixels(second_alone[0]))
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))
    assert steps == [(i, 6) for i in range(1, 7)]


def test_width_and_height_must_be_multiples_of_8(generator: Generator) -> None:
    with pytest.raises(AssertionError, match="multiple of 8"):
        generator.generate(GenerationRequest(**{**REQUEST.__dict__, "width": 60}))


def test_lora_changes_the_output_and_none_restores_the_base(
    generator: Generator, lora_files: tuple[Path, Path]
) -> None:
    base = pixels(generator.generate(REQUEST)[0])
    styled = pixels(generator.generate(REQUEST, lora=LoraWeights("first", lora_files[0]))[0])
    assert np.abs(styled - base).mean() > 2.0
    assert np.array_equal(pixels(generator.generate(REQUEST)[0]), base)
    again = pixels(generator.generate(REQUEST, lora=LoraWeights("first", lora_files[0]))[0])
    assert np.array_equal(again, styled)


def test_adapter_is_loaded_once_and_reused(
    generator: Generator, pipeline: StableDiffusionPipeline, lora_files: tuple[Path, Path]
) -> None:
    style = LoraWeights("first", lora_files[0])
    generator.generate(REQUEST, lora=style)
    slot = generator.adapters.adapter_slots["first"]
    loaded = _lora_param(pipeline, slot)
    generator.generate(REQUEST)
    generator.generate(REQUEST, lora=style)
    # A reload would have replaced the parameter with a new one.
    assert _lora_param(pipeline, slot) is loaded
    assert generator.loaded_adapters == ("first",)
    assert pipeline.get_list_adapters() == {"unet": [slot]}
    assert generator.adapters.loads == 1


def test_least_recently_used_adapter_is_evicted_at_the_bound(
    generator: Generator, pipeline: StableDiffusionPipeline, lora_files: tuple[Path, Path]
) -> None:
    a, b, c = (LoraWeights(name, lora_files[0]) for name in ("a", "b", "c"))
    styled_a = pixels(generator.generate(REQUEST, lora=a)[0])
    generator.generate(REQUEST, lora=b)
    generator.generate(REQUEST, lora=a)  # a is now the most recently used
    assert generator.loaded_adapters == ("b", "a")
    b_slot = generator.adapters.adapter_slots["b"]
    generator.generate(REQUEST, lora=c)
    assert generator.loaded_adapters == ("a", "c")
    # c took b's slot: hot-swapped in, not a third adapter.
    assert generator.adapters.adapter_slots["c"] == b_slot
    assert (generator.adapters.loads, generator.adapters.hotswaps) == (2, 1)
    assert sorted(pipeline.get_list_adapters()["unet"]) == sorted(
        generator.adapters.adapter_slots.values()
    )
    assert len(generator.adapters.adapter_slots) == 2
    assert np.array_equal(pixels(generator.generate(REQUEST, lora=a)[0]), styled_a)
    assert generator.loaded_adapters == ("c", "a")


def test_new_weights_under_a_loaded_name_are_reloaded(
    generator: Generator, lora_files: tuple[Path, Path]
) -> None:
    old = pixels(generator.generate(REQUEST, lora=LoraWeights("style", lora_files[0]))[0])
    new = pixels(generator.generate(REQUEST, lora=LoraWeights("style", lora_files[1]))[0])
    assert not np.array_equal(old, new)
    assert generator.loaded_adapters == ("style",)


def test_generator_adapters_keep_working_after_training(
    generator: Generator,
    pipeline: StableDiffusionPipeline,
    lora_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    style = LoraWeights("first", lora_files[0])
    styled = pixels(generator.generate(REQUEST, lora=style)[0])
    base = pixels(generator.generate(REQUEST)[0])  # leaves LoRA disabled

    train_lora(
        pipeline, reference_images(), TRIGGER, TrainSettings(steps=3, resolution=64), tmp_path
    )

    assert pipeline.get_list_adapters() == {"unet": [generator.adapters.adapter_slots["first"]]}
    assert np.array_equal(
        pixels(
            pipeline(
                TRIGGER,
                num_inference_steps=REQUEST.steps,
                width=64,
                height=64,
                generator=torch.Generator().manual_seed(REQUEST.seed),
            ).images[0]
        ),
        base,
    )
    assert np.array_equal(pixels(generator.generate(REQUEST, lora=style)[0]), styled)
    assert np.array_equal(pixels(generator.generate(REQUEST)[0]), base)


def test_a_variation_stays_near_its_seed_and_strength_zero_is_the_seed(
    generator: Generator,
) -> None:
    """Variations move the starting noise a little towards another seed's."""
    base = pixels(generator.generate(REQUEST)[0])
    unchanged = generator.generate(replace(REQUEST, variation_seed=99, variation_strength=0.0))[0]
    near = pixels(
        generator.generate(replace(REQUEST, variation_seed=99, variation_strength=0.15))[0]
    )
    other_seed = pixels(generator.generate(replace(REQUEST, seed=99))[0])
    assert np.array_equal(base, pixels(unchanged))
    assert not np.array_equal(base, near)
    # Closer to its own seed's image than a different seed's image is.
    assert np.abs(near - base).mean() < np.abs(other_seed - base).mean()


# Batched kernels round differently from a batch of one. Measured on the CPU
# with the tiny model: at most 1 level (of 255) on under 0.1% of the pixels.
BATCH_TOLERANCE = 2


def test_a_batch_gives_each_request_the_images_its_seed_gives_alone(
    generator: Generator, lora_files: tuple[Path, Path]
) -> None:
    lora = LoraWeights("first", lora_files[0])
    requests = [
        replace(REQUEST, seed=5, count=2),
        replace(REQUEST, prompt="a quiet harbour", seed=9, negative_prompt="fog"),
        replace(REQUEST, seed=5, variation_seed=40, variation_strength=0.3),
    ]
    batched = generator.generate_batch(requests, lora=lora)
    alone = [generator.generate(r, lora=lora) for r in requests]
    assert [len(images) for images in batched] == [2, 1, 1]
    for batch_images, solo_images in zip(batched, alone, strict=True):
        for from_batch, from_solo in zip(batch_images, solo_images, strict=True):
            assert np.abs(pixels(from_batch) - pixels(from_solo)).max() <= BATCH_TOLERANCE
    # Different seeds, prompts and variations still give different images.
    firsts = [pixels(images[0]) for images in batched]
    assert not np.array_equal(firsts[0], firsts[1])
    assert not np.array_equal(firsts[0], firsts[2])


def test_a_batch_refuses_requests_that_cannot_share_a_call(generator: Generator) -> None:
    with pytest.raises(ValueError, match="same steps"):
        generator.generate_batch([REQUEST, replace(REQUEST, steps=REQUEST.steps + 1)])
