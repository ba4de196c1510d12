"""The core's placement of a picture on a stored output (picture_alignment) and the
comparison of what it shows (aligned_match), on real pictures: where a crop or a rescale
sits is found to a fraction of a pixel, a stretch is told from a rescale, and a picture
that is not the output never compares as the same, however it is placed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image
from tests.support.picture_edits import paste
from tests.unit.core.test_verify_regions import IDS, PICTURES
from tests.unit.provenance.test_watermark import illustration, reencode, scene
from tests.unit.provenance.test_watermark_geometry import crop_to_three_quarters, rescaled

from stylebot.bot.core.aligned_match import compare_aligned
from stylebot.bot.core.picture_alignment import align

# (edit, expected scale, expected left and top of the picture on the output)
PLACEMENTS: list[tuple[str, Callable[[Image.Image], Image.Image], float, float, float]] = [
    ("as-made", lambda i: i, 1.0, 0.0, 0.0),
    ("crop-75%-area", crop_to_three_quarters, 1.0, 11.0, 5.0),
    ("crop-right-and-bottom", lambda i: i.crop((0, 0, i.width - 60, i.height - 40)), 1.0, 0, 0),
    ("0.7x", lambda i: rescaled(i, 0.7), 0.7, 0.0, 0.0),
    ("1.6x", lambda i: rescaled(i, 1.6), 1.6, 0.0, 0.0),
    (
        "crop-then-0.8x-jpeg",
        lambda i: reencode(rescaled(i.crop((40, 30, i.width, i.height)), 0.8), "JPEG", quality=80),
        0.8,
        40.0,
        30.0,
    ),
]


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
def test_a_crop_or_a_rescale_is_placed_to_a_fraction_of_a_pixel(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    output = make()
    for name, edit, scale, left, top in PLACEMENTS:
        placed = align(edit(output), output)
        assert placed is not None, name
        # Whole-pixel sizes move the true scale by up to half a pixel over the side.
        assert abs(placed.scale_x / scale - 1) < 0.004, (name, placed)
        assert abs(placed.scale_y / scale - 1) < 0.004, (name, placed)
        assert abs(placed.left - left) < 0.6, (name, placed)
        assert abs(placed.top - top) < 0.6, (name, placed)
        assert not placed.stretched, name


def test_a_pasted_picture_does_not_pull_the_placement_off() -> None:
    output = scene(640, 512, seed=81)
    edited = paste(output.crop((64, 0, 640, 512)), illustration(82), 0.25)
    placed = align(edited, output)
    assert placed is not None
    assert abs(placed.left - 64) < 0.6
    assert abs(placed.top) < 0.6
    assert abs(placed.scale - 1) < 0.004


def test_a_stretch_is_not_a_rescale() -> None:
    output = scene(512, 512, seed=83)
    placed = align(output.resize((528, 512), Image.Resampling.LANCZOS), output)
    assert placed is not None
    assert placed.stretched
    assert not compare_aligned(output.resize((528, 512)), output).same


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
def test_another_picture_never_compares_as_the_output_or_a_piece_of_it(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    output = make()
    others = [
        scene(output.width, output.height, seed=84),
        illustration(85).resize(output.size),
        scene(output.width, output.height, seed=86).crop((50, 0, output.width, output.height)),
        rescaled(illustration(87), 0.7),
    ]
    for other in others:
        difference = compare_aligned(other, output)
        assert not difference.same
        assert not difference.altered
        assert difference.percent >= 90
