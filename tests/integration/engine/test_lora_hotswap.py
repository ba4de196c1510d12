"""The adapter cache hot-swaps a new style into the least recently used style's slot."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline
from peft.tuners.lora import LoraLayer
from tests.integration.engine.test_lora_files import other_architecture_lora
from tests.support.text_encoder_lora import kohya_text_encoder_layers, text_encoder_lora_layers
from tests.support.tiny_styles import REQUEST, STRONG, TRIGGER, pixels, reference_images

from stylebot.engine.generation_request import LoraWeights
from stylebot.engine.generator import Generator
from stylebot.engine.lora_files import kohya_state_dict
from stylebot.engine.lora_loading import LoraMismatchError
from stylebot.engine.models import load_pipeline
from stylebot.trainer.lora import train_lora

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# Padding a slot to a larger rank adds zero terms, which can round a sum
# differently: at most a level or two of 255.
SWAP_TOLERANCE = 2


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def styles(
    pipeline: StableDiffusionPipeline, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, LoraWeights]:
    """Three rank-4 styles, a rank-8 one, and a rank-4 one with alpha 8 (scale 2, kohya file)."""
    root = tmp_path_factory.mktemp("styles")
    made: dict[str, LoraWeights] = {}
    for seed in range(3):
        run = replace(STRONG, seed=seed)
        path = train_lora(
            pipeline, reference_images(), TRIGGER, run, root / f"r4_{seed}"
        ).weights_path
        made[f"r4_{seed}"] = LoraWeights(f"r4_{seed}", path)
    rank8 = replace(STRONG, seed=3, rank=8)
    made["r8"] = LoraWeights(
        "r8", train_lora(pipeline, reference_images(), TRIGGER, rank8, root / "r8").weights_path
    )
    kohya = kohya_state_dict(safetensors.torch.load_file(made["r4_0"].path), alpha=8.0)
    safetensors.torch.save_file(kohya, root / "alpha8.safetensors")
    made["alpha8"] = LoraWeights("alpha8", root / "alpha8.safetensors")
    return made


@pytest.fixture(scope="module")
def fresh_images(
    pipeline: StableDiffusionPipeline, styles: dict[str, LoraWeights]
) -> dict[str, np.ndarray]:
    """Each style's image from a plain load into a cache that never swaps."""
    reference = Generator(pipeline, max_loaded_adapters=len(styles), lora_hotswap=False)
    images = {
        name: pixels(reference.generate(REQUEST, lora=style)[0]) for name, style in styles.items()
    }
    assert reference.adapters.hotswaps == 0
    for slot in reference.adapters.adapter_slots.values():
        pipeline.delete_adapters([slot])
    return images


def _generator(pipeline: StableDiffusionPipeline, **options: object) -> Iterator[Generator]:
    made = Generator(pipeline, **options)  # type: ignore[arg-type]
    yield made
    # The pipeline is shared by the module: leave no adapters behind.
    for slot in made.adapters.adapter_slots.values():
        pipeline.delete_adapters([slot])


@pytest.fixture
def two_slots(pipeline: StableDiffusionPipeline) -> Iterator[Generator]:
    yield from _generator(pipeline, max_loaded_adapters=2)


def _slot_tensors(pipeline: StableDiffusionPipeline, slot: str) -> list[torch.Tensor]:
    return [
        tensor.detach().clone()
        for module in pipeline.unet.modules()
        if isinstance(module, LoraLayer) and slot in module.lora_A
        for tensor in (module.lora_A[slot].weight, module.lora_B[slot].weight)
    ]


def test_styles_swapped_through_a_small_cache_give_their_fresh_load_images(
    two_slots: Generator,
    pipeline: StableDiffusionPipeline,
    styles: dict[str, LoraWeights],
    fresh_images: dict[str, np.ndarray],
) -> None:
    order = ["r4_0", "r4_1", "r4_2", "alpha8", "r4_0", "r8", "r4_1", "alpha8", "r4_2"]
    for name in order:
        image = pixels(two_slots.generate(REQUEST, lora=styles[name])[0])
        assert np.abs(image - fresh_images[name]).max() <= SWAP_TOLERANCE, name
        assert len(pipeline.get_list_adapters()["unet"]) <= 2
        assert two_slots.loaded_adapters[-1] == name
    # Two slots loaded from disk; every later style went into one of them.
    assert two_slots.adapters.loads == 2
    assert two_slots.adapters.hotswaps == len(order) - 2
    assert sorted(pipeline.get_list_adapters()["unet"]) == ["slot0_", "slot1_"]
    # The styles really differ, so matching each one's own image means something.
    assert np.abs(fresh_images["alpha8"] - fresh_images["r4_0"]).mean() > 1.0
    assert np.abs(fresh_images["r4_1"] - fresh_images["r4_0"]).mean() > 1.0


def test_a_cached_style_keeps_its_tensors_and_image_while_another_is_swapped_in(
    two_slots: Generator, pipeline: StableDiffusionPipeline, styles: dict[str, LoraWeights]
) -> None:
    kept, swapped_out, swapped_in = styles["r4_0"], styles["r4_1"], styles["r4_2"]
    two_slots.generate(REQUEST, lora=swapped_out)
    before = pixels(two_slots.generate(REQUEST, lora=kept)[0])
    kept_slot = two_slots.adapters.adapter_slots[kept.adapter_name]
    kept_tensors = _slot_tensors(pipeline, kept_slot)

    two_slots.generate(REQUEST, lora=swapped_in)

    assert two_slots.adapters.hotswaps == 1
    assert two_slots.adapters.adapter_slots[swapped_in.adapter_name] != kept_slot
    assert two_slots.loaded_adapters == (kept.adapter_name, swapped_in.adapter_name)
    after = _slot_tensors(pipeline, kept_slot)
    assert all(torch.equal(a, b) for a, b in zip(kept_tensors, after, strict=True))
    assert np.array_equal(pixels(two_slots.generate(REQUEST, lora=kept)[0]), before)


def test_a_rank_above_the_slots_falls_back_to_unload_and_load(
    pipeline: StableDiffusionPipeline,
    styles: dict[str, LoraWeights],
    fresh_images: dict[str, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for generator in _generator(pipeline, max_loaded_adapters=1, hotswap_rank=4):
        generator.generate(REQUEST, lora=styles["r4_0"])
        with caplog.at_level(logging.INFO, logger="stylebot.engine.adapter_slots"):
            image = pixels(generator.generate(REQUEST, lora=styles["r8"])[0])
        assert "rank 8 is above the slot's 4" in caplog.text
        assert (generator.adapters.loads, generator.adapters.hotswaps) == (2, 0)
        assert generator.loaded_adapters == ("r8",)
        assert len(pipeline.get_list_adapters()["unet"]) == 1
        assert np.abs(image - fresh_images["r8"]).max() <= SWAP_TOLERANCE
        # A rank-4 style goes into the unpadded rank-8 slot: hot-swapped again.
        image = pixels(generator.generate(REQUEST, lora=styles["r4_1"])[0])
        assert (generator.adapters.loads, generator.adapters.hotswaps) == (2, 1)
        assert np.abs(image - fresh_images["r4_1"]).max() <= SWAP_TOLERANCE


def test_with_hotswap_off_every_new_style_is_loaded(
    pipeline: StableDiffusionPipeline,
    styles: dict[str, LoraWeights],
    fresh_images: dict[str, np.ndarray],
) -> None:
    for generator in _generator(pipeline, max_loaded_adapters=1, lora_hotswap=False):
        for name in ("r4_0", "r4_1", "r4_0"):
            image = pixels(generator.generate(REQUEST, lora=styles[name])[0])
            assert np.array_equal(image, fresh_images[name])
        assert (generator.adapters.loads, generator.adapters.hotswaps) == (3, 0)
        assert len(pipeline.get_list_adapters()["unet"]) == 1


def test_hotswap_rank_must_be_positive(pipeline: StableDiffusionPipeline) -> None:
    with pytest.raises(ValueError, match="hotswap_rank"):
        Generator(pipeline, hotswap_rank=0)


def test_a_lora_for_another_model_is_refused_on_the_way_in_and_changes_nothing_else(
    pipeline: StableDiffusionPipeline,
    styles: dict[str, LoraWeights],
    fresh_images: dict[str, np.ndarray],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PEFT would swap in tensors of any shape: the slot is checked against the model."""
    foreign = LoraWeights("foreign", other_architecture_lora(tmp_path))
    for generator in _generator(pipeline, max_loaded_adapters=1):
        generator.generate(REQUEST, lora=styles["r4_0"])
        with (
            caplog.at_level(logging.INFO, logger="stylebot.engine.adapter_slots"),
            pytest.raises(LoraMismatchError),
        ):
            generator.generate(REQUEST, lora=foreign)
        assert "other sizes than the model's" in caplog.text  # the swap was tried, then undone
        assert generator.loaded_adapters == ()
        assert pipeline.get_list_adapters() in ({}, {"unet": []})
        # The base model and the styles work as before.
        image = pixels(generator.generate(REQUEST, lora=styles["r4_1"])[0])
        assert np.abs(image - fresh_images["r4_1"]).max() <= SWAP_TOLERANCE
        assert generator.loaded_adapters == ("r4_1",)


def _with_text_encoder_layers(
    pipeline: StableDiffusionPipeline, unet_lora: Path, folder: Path
) -> Path:
    """A kohya file with the style's UNet layers and `lora_te1_` text-encoder layers."""
    layers = text_encoder_lora_layers(pipeline.text_encoder, 4, init=True)
    tensors = kohya_state_dict(safetensors.torch.load_file(unet_lora))
    tensors.update(kohya_text_encoder_layers(layers))
    path = folder / "with-te.safetensors"
    safetensors.torch.save_file({k: t.contiguous() for k, t in tensors.items()}, path)
    return path


def test_text_encoder_layers_are_never_hot_swapped(
    pipeline: StableDiffusionPipeline,
    styles: dict[str, LoraWeights],
    fresh_images: dict[str, np.ndarray],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with_te = LoraWeights(
        "with_te", _with_text_encoder_layers(pipeline, styles["r4_0"].path, tmp_path)
    )
    for generator in _generator(pipeline, max_loaded_adapters=1):
        generator.generate(REQUEST, lora=styles["r4_1"])
        with caplog.at_level(logging.INFO, logger="stylebot.engine.adapter_slots"):
            generator.generate(REQUEST, lora=with_te)
        assert "cannot hot-swap text-encoder" in caplog.text
        assert (generator.adapters.loads, generator.adapters.hotswaps) == (2, 0)
        assert list(pipeline.text_encoder.peft_config) == [
            generator.adapters.adapter_slots["with_te"]
        ]
        # Into the slot that holds text-encoder layers: unloaded too, none left behind.
        image = pixels(generator.generate(REQUEST, lora=styles["r4_1"])[0])
        assert (generator.adapters.loads, generator.adapters.hotswaps) == (3, 0)
        assert not getattr(pipeline.text_encoder, "peft_config", None)
        assert np.abs(image - fresh_images["r4_1"]).max() <= SWAP_TOLERANCE
