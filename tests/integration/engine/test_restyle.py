"""Restyle, upscale, extend and repaint on the hot tiny pipeline: made from the same
components (no second model), starting from the picture, measured on the pixels, and
text-to-image served as before."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from diffusers import StableDiffusionPipeline
from PIL import Image
from tests.support.tiny_styles import REQUEST, pixels

from stylebot.engine.generator import Generator
from stylebot.engine.image_modes import box_mask, extended_canvas, mask_from_png
from stylebot.engine.models import load_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> Generator:
    pipeline: StableDiffusionPipeline = load_pipeline(str(tiny_model_dir), device="cpu")
    return Generator(pipeline, max_loaded_adapters=2)


def _stripes() -> Image.Image:
    """A picture nothing random looks like: bold vertical stripes."""
    row = np.where((np.arange(64) // 8) % 2 == 0, 250, 5).astype(np.uint8)
    return Image.fromarray(np.repeat(np.tile(row, (64, 1))[:, :, None], 3, axis=2))


def test_the_image_pipeline_shares_every_component_of_the_text_pipeline(
    generator: Generator,
) -> None:
    image_pipe = generator.modes.image_to_image()
    inpainting = generator.modes.inpainting()
    base = generator.pipeline
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(image_pipe, name) is getattr(base, name), name
        assert getattr(inpainting, name) is getattr(base, name), name
    assert generator.modes.image_to_image() is image_pipe  # made once


def test_the_image_pipelines_draw_no_progress_bar_as_the_text_pipeline(
    generator: Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    # from_pipe does not carry the loaded pipeline's settings: the worker's log had a
    # progress bar for every restyle, extend and repaint.
    generator.generate(replace(REQUEST, init_image=_stripes(), strength=0.5))
    mask = box_mask(64, 64, (16, 16, 32, 24))
    generator.generate(replace(REQUEST, init_image=_stripes(), mask_image=mask, strength=1.0))
    assert "%|" not in capsys.readouterr().err, "a progress bar"


def test_a_restyle_starts_from_the_picture_and_strength_sets_how_far_it_moves(
    generator: Generator,
) -> None:
    stripes = _stripes()
    gentle = replace(REQUEST, steps=4, init_image=stripes, strength=0.25)
    strong = replace(gentle, strength=1.0)
    [near] = generator.generate(gentle)
    [far] = generator.generate(strong)
    [text_only] = generator.generate(replace(REQUEST, steps=4))
    assert near.size == stripes.size
    to_stripes = {
        name: float(np.abs(pixels(image) - pixels(stripes)).mean())
        for name, image in (("near", near), ("far", far), ("text", text_only))
    }
    # Low strength keeps much of the picture; full strength and text alone do not.
    assert to_stripes["near"] < to_stripes["far"]
    assert to_stripes["near"] < to_stripes["text"]
    # The same request again gives the same pixels (its seed's noise, its picture).
    [again] = generator.generate(gentle)
    assert np.array_equal(pixels(again), pixels(near))


def test_text_to_image_is_unchanged_by_restyles_in_between(generator: Generator) -> None:
    [before] = generator.generate(REQUEST)
    generator.generate(replace(REQUEST, init_image=_stripes(), strength=0.5))
    [after] = generator.generate(REQUEST)
    assert np.array_equal(pixels(before), pixels(after))


def test_restyles_of_one_strength_share_a_batch(generator: Generator) -> None:
    first = replace(REQUEST, init_image=_stripes(), strength=0.5)
    second = replace(first, seed=99, init_image=_stripes().transpose(Image.Transpose.ROTATE_90))
    made = generator.generate_batch([first, second])
    assert [len(images) for images in made] == [1, 1]
    with pytest.raises(ValueError, match="same steps"):
        generator.generate_batch([first, replace(REQUEST, seed=5)])


def test_an_upscale_pass_draws_at_twice_the_pictures_size(generator: Generator) -> None:
    [small] = generator.generate(REQUEST)
    [large] = generator.generate(
        replace(REQUEST, width=128, height=128, init_image=small, strength=0.35)
    )
    assert large.size == (128, 128)
    # The enlarged picture is what it starts from: it stays close to it.
    enlarged = small.resize((128, 128), Image.Resampling.LANCZOS)
    assert float(np.abs(pixels(large) - pixels(enlarged)).mean()) < 40


def test_extend_draws_the_new_area_and_keeps_the_picture_pixel_for_pixel(
    generator: Generator,
) -> None:
    stripes = _stripes()
    # Zoomed out 2x: the 64 px picture in the middle of a 128 px canvas.
    box = (32, 32, 64, 64)
    canvas, mask = extended_canvas(stripes, 128, 128, box)
    request = replace(
        REQUEST, width=128, height=128, init_image=canvas, mask_image=mask, strength=1.0
    )
    [extended] = generator.generate(request)
    assert extended.size == (128, 128)
    made = pixels(extended)
    inside = made[32:96, 32:96]
    assert np.array_equal(inside, pixels(stripes)), "the picture is kept as it was"
    outside = np.ones((128, 128), dtype=bool)
    outside[32:96, 32:96] = False
    # The new area is drawn, not the blurred stretch it started from.
    changed = np.abs(made - pixels(canvas)).max(axis=2)[outside]
    assert float((changed > 8).mean()) > 0.5


def test_repaint_changes_the_region_and_keeps_the_rest(generator: Generator) -> None:
    stripes = _stripes()
    box = (16, 16, 32, 24)  # left, top, width, height in pixels
    request = replace(
        REQUEST,
        init_image=stripes,
        mask_image=box_mask(64, 64, box),
        strength=1.0,
    )
    [repainted] = generator.generate(request)
    made, before = pixels(repainted), pixels(stripes)
    region = np.zeros((64, 64), dtype=bool)
    region[16:40, 16:48] = True
    assert np.array_equal(made[~region], before[~region]), "the rest is kept"
    changed = np.abs(made - before).max(axis=2)[region]
    assert float((changed > 8).mean()) > 0.5, "the region is drawn anew"


def test_a_members_mask_image_counts_white_as_repainted() -> None:
    drawn = Image.new("RGB", (32, 32), (0, 0, 0))
    drawn.paste((200, 200, 200), (0, 0, 16, 32))  # light grey: white from half way
    mask = np.asarray(mask_from_png(drawn, 64, 64))
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[:, :32] == 255).all()
    assert (mask[:, 32:] == 0).all()


@pytest.mark.parametrize(("steps", "strength"), [(1, 0.35), (2, 0.2)])
def test_few_steps_at_a_low_strength_still_draw_at_least_one_step(
    generator: Generator, steps: int, strength: float
) -> None:
    """steps x strength under one left the image pipeline no step at all (it crashed)."""
    stripes = _stripes()
    seen: list[int] = []
    [made] = generator.generate(
        replace(REQUEST, steps=steps, init_image=stripes, strength=strength),
        on_step=lambda done, _total: seen.append(done),
    )
    assert made.size == stripes.size
    assert seen, "no denoising step ran"
