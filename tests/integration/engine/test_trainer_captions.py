"""Per-image captions reach the text encoder: the trigger first, then each image's own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from stylebot.engine.models import load_pipeline
from stylebot.queue.payloads import TrainSettings
from stylebot.trainer.lora import train_lora

TRIGGER = "sks style"
CAPTIONS = ("red city, night", "", "blue forest, fog, dawn")
SETTINGS = TrainSettings(steps=6, resolution=64, rank=4, learning_rate=1e-3, seed=7)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _images(count: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(count)
    ]


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> StableDiffusionPipeline:
    return load_pipeline(str(tiny_model_dir), device="cpu")


def _encoded_texts(
    pipeline: StableDiffusionPipeline, captions: tuple[str, ...], settings: TrainSettings, out: Path
) -> list[str]:
    """Every text the text encoder was given during the run, decoded from its token ids."""
    seen: list[str] = []

    def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        for ids in args[0]:
            text = pipeline.tokenizer.decode(ids, skip_special_tokens=True)
            # CLIP's tokenizer splits punctuation off: its decode writes "a , b".
            seen.append(text.replace(" ,", ",").strip())

    handle = pipeline.text_encoder.register_forward_pre_hook(hook)
    try:
        train_lora(pipeline, _images(len(captions)), TRIGGER, settings, out, captions=captions)
    finally:
        handle.remove()
    return seen


def test_each_image_trains_on_the_trigger_then_its_own_caption(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    texts = _encoded_texts(pipeline, CAPTIONS, SETTINGS, tmp_path)
    # Each text once (frozen encoder: encoded once, then reused), the captionless image
    # on the trigger alone.
    assert sorted(texts) == sorted(
        ["sks style, red city, night", "sks style", "sks style, blue forest, fog, dawn"]
    )


def test_a_held_out_image_is_measured_on_its_caption(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, holdout_images=1, checkpoint_every_steps=3)
    texts = _encoded_texts(pipeline, CAPTIONS, settings, tmp_path)
    assert sorted(set(texts)) == sorted(
        ["sks style, red city, night", "sks style", "sks style, blue forest, fog, dawn"]
    )


def test_dropout_one_trains_every_image_on_the_trigger_alone(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, caption_dropout=1.0)
    assert set(_encoded_texts(pipeline, CAPTIONS, settings, tmp_path)) == {"sks style"}


def test_shuffled_tags_keep_the_trigger_first_and_every_tag(
    pipeline: StableDiffusionPipeline, tmp_path: Path
) -> None:
    settings = dataclasses.replace(SETTINGS, steps=12, shuffle_tags=True)
    first, second = ["fog", "ink", "moon", "rain"], ["sand", "sea", "sun", "wind"]
    captions = (", ".join(first), ", ".join(second))
    texts = _encoded_texts(pipeline, captions, settings, tmp_path)
    orders = {text for text in texts if set(first) & set(text.split(", "))}
    assert len(orders) > 1  # shuffled: more than one order over the run
    for text in texts:
        trigger, *tags = [tag.strip() for tag in text.split(",")]
        assert trigger == "sks style"
        assert sorted(tags) in (first, second)


def test_captions_change_what_is_learned(pipeline: StableDiffusionPipeline, tmp_path: Path) -> None:
    def losses(captions: tuple[str, ...], name: str) -> list[float]:
        seen: list[float] = []
        train_lora(
            pipeline,
            _images(3),
            TRIGGER,
            SETTINGS,
            tmp_path / name,
            captions=captions,
            on_progress=lambda _s, _t, loss: seen.append(loss),
        )
        return seen

    plain, captioned = losses(("", "", ""), "plain"), losses(CAPTIONS, "captioned")
    assert plain != pytest.approx(captioned, rel=1e-4)


def test_captions_must_be_one_per_image(pipeline: StableDiffusionPipeline, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        train_lora(pipeline, _images(3), TRIGGER, SETTINGS, tmp_path, captions=("a", "b"))
