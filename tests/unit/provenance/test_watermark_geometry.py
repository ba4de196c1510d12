"""Issue 14, geometry: the mark is read back after the edits people make when passing an
image on (crops, rescales that are not undone, screenshots, Telegram), outputs marked
with earlier versions still verify, and edited unmarked images never read as marked.

A handful of images per edit, at 256 and 512 pixels; the rates over hundreds of images
are measured by ``bench/watermark_robustness.py``."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from tests.support.watermark_images import (
    illustration,
    psnr,
    reencode,
    scene,
    subject_on_background,
    telegram_photo,
    unmarked_images,
)

from stylebot.provenance.tiled_watermark import quantise_tiled
from stylebot.provenance.watermark import (
    _embed,
    _quantise,
    embed_watermark,
    inspect_watermark,
    new_output_id,
    read_watermark,
)

SIZES = [256, 512]


def pictures(side: int) -> list[tuple[str, Image.Image]]:
    """Three kinds of picture at ``side`` x ``side``: texture, flat colours, a subject on
    a plain background."""
    return [
        ("scene", scene(side, side, seed=side + 1)),
        ("illustration", illustration(seed=side + 2).resize((side, side))),
        ("subject-on-white", subject_on_background("white", seed=side + 3).resize((side, side))),
    ]


def digest(name: str) -> str:
    """A fixed output id for ``name``."""
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def untraced(side: int, edit: Callable[[Image.Image], Image.Image]) -> list[str]:
    """The kinds of picture whose mark is not read back after ``edit``."""
    failed = []
    for kind, picture in pictures(side):
        # A fixed id per picture: which ids an edit loses is chance (the bench measures
        # the rates over many), and a test must give the same answer every run.
        output_id = digest(f"{kind} {side}")
        if read_watermark(edit(embed_watermark(picture, output_id))) != output_id:
            failed.append(kind)
    return failed


def rescaled(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, Image.Resampling.BICUBIC)


def screenshot(image: Image.Image) -> Image.Image:
    """Shown at 85%, captured with a 4 px grey frame around it, saved as PNG."""
    shown = rescaled(image, 0.85)
    framed = Image.new("RGB", (shown.width + 8, shown.height + 8), (200, 200, 200))
    framed.paste(shown, (4, 4))
    return reencode(framed, "PNG")


def crop_left_tenth(image: Image.Image) -> Image.Image:
    return image.crop((image.width // 10, 0, image.width, image.height))


def crop_to_three_quarters(image: Image.Image) -> Image.Image:
    """87% of the width and 86% of the height (75% of the area), at an odd offset."""
    width, height = round(image.width * 0.87), round(image.height * 0.86)
    return image.crop((11, 5, 11 + width, 5 + height))


@pytest.mark.parametrize("side", SIZES)
def test_mark_survives_a_tenth_cropped_off_one_side(side: int) -> None:
    assert untraced(side, crop_left_tenth) == []


@pytest.mark.parametrize("side", SIZES)
def test_mark_survives_a_crop_keeping_three_quarters(side: int) -> None:
    assert untraced(side, crop_to_three_quarters) == []


@pytest.mark.parametrize("side", SIZES)
def test_mark_survives_a_crop_sent_as_a_telegram_photo(side: int) -> None:
    assert untraced(side, lambda image: telegram_photo(crop_to_three_quarters(image))) == []


@pytest.mark.parametrize("side", SIZES)
@pytest.mark.parametrize("factor", [0.5, 0.7, 1.37, 2.0])
def test_mark_survives_a_rescale_that_is_not_undone(side: int, factor: float) -> None:
    assert untraced(side, lambda image: reencode(rescaled(image, factor), "PNG")) == []


@pytest.mark.parametrize("side", SIZES)
def test_mark_survives_a_screenshot(side: int) -> None:
    assert untraced(side, screenshot) == []


@pytest.mark.parametrize(("side", "factor"), [(256, 1.3), (512, 1.3), (512, 0.8)])
def test_mark_survives_a_rescale_sent_as_a_telegram_photo(side: int, factor: float) -> None:
    # JPEG's own block edges and smoothed chroma used to hide the rescale from the
    # estimate, and plain backgrounds voted at wrong scales as loudly as the mark.
    # Not promised: the scene at 256 px and 1.3x, traced for 2 of 6 ids (1 of 6 with
    # the version 3 mark): whether the scale estimate offers a candidate near 1.3 varies
    # with the marked pixels. The other cases: 4-6 of 6 ids with either mark.
    allowed = {"scene"} if (side, factor) == (256, 1.3) else set()
    failed = untraced(side, lambda image: telegram_photo(rescaled(image, factor)))
    assert set(failed) <= allowed


def test_mark_survives_a_slight_rescale_of_a_small_picture_sent_as_a_telegram_photo() -> None:
    # 1.02x of 256 px: the mark's grid repeats every 8.16 px, JPEG's every 8, and over
    # 261 px the spectral estimate cannot tell them apart, so no candidate came within
    # the refinement's 1.6% (1.0 itself is not refined). The reader now also tries 1.5%
    # either side of the scales JPEG's grid hides; it lost 2 of these 3 pictures before.
    assert untraced(256, lambda image: telegram_photo(rescaled(image, 1.02))) == []


@pytest.mark.parametrize("factor", [0.787, 1.2422, 1.61])
def test_mark_survives_a_rescale_of_a_grainy_picture(factor: float) -> None:
    # Fine texture in every block: read half a pixel off the marked grid, each block's
    # sum takes in its neighbours' texture, and the votes are noise. The reader used to
    # resample at one phase only, which is half a pixel off whenever the estimated scale
    # is a hair high (the picture's side then comes out a pixel short); it lost all
    # three of these.
    output_id = digest("scene 1")
    marked = embed_watermark(scene(512, 512, seed=1, cell=16, grain_sd=8.0), output_id)
    assert read_watermark(reencode(rescaled(marked, factor), "PNG")) == output_id


def test_mark_survives_a_screenshot_saved_as_jpeg() -> None:
    def jpeg_screenshot(image: Image.Image) -> Image.Image:
        """Shown at 130%, captured with a 3 px dark frame, saved as JPEG q80."""
        shown = rescaled(image, 1.3)
        framed = Image.new("RGB", (shown.width + 6, shown.height + 6), (40, 40, 40))
        framed.paste(shown, (3, 3))
        return reencode(framed, "JPEG", quality=80)

    assert untraced(512, jpeg_screenshot) == []


def shrunk_screenshot(image: Image.Image, factor: float) -> Image.Image:
    """Shown at ``factor``, captured with a 3 px frame, saved as JPEG q80, then sent as a
    Telegram photo."""
    shown = rescaled(image, factor)
    framed = Image.new("RGB", (shown.width + 6, shown.height + 6), (90, 90, 90))
    framed.paste(shown, (3, 3))
    return telegram_photo(reencode(framed, "JPEG", quality=80))


def test_mark_survives_a_shrunk_jpeg_screenshot_sent_as_a_telegram_photo() -> None:
    # Shown at 80%, saved as JPEG q80, then Telegram's JPEG: the mark's block edges are
    # blurred by the downscale and twice by chroma subsampling, and the votes were lost
    # even at the right scale. The reader now sharpens a shrunk copy's U plane.
    output_id = digest("illustration 512")
    marked = embed_watermark(illustration(seed=514), output_id)
    assert read_watermark(shrunk_screenshot(marked, 0.8)) == output_id


def test_a_screenshot_at_seventy_percent_sent_as_a_telegram_photo_is_mostly_traced() -> None:
    # Shown at 70% and through JPEG twice, the copy votes so faintly that over the
    # 256 px window the placement search used to find a wrong grid even at the true
    # scale (all three lost); the reader now searches 512 px of a shrunk copy. Still a
    # coin toss per id: over 6 ids each, these pictures are traced 2, 3 and 4 times (3, 2
    # and 4 with the version 3 mark), so the test asks for two of the three.
    pictures = {
        "subject-on-white 1": subject_on_background("white", seed=1).resize((512, 512)),
        "subject-on-white 3": subject_on_background("white", seed=3).resize((512, 512)),
        "illustration 4": illustration(seed=4),
    }
    traced = [
        name
        for name, picture in pictures.items()
        if read_watermark(shrunk_screenshot(embed_watermark(picture, digest(name)), 0.7))
        == digest(name)
    ]
    assert len(traced) >= 2, traced


def test_mark_survives_jpeg_q60_at_256() -> None:
    assert untraced(256, lambda image: reencode(image, "JPEG", quality=60)) == []


def test_a_reading_says_which_mark_and_how_much_the_picture_was_rescaled() -> None:
    output_id = new_output_id()
    marked = embed_watermark(scene(512, 512, seed=7), output_id)
    reading = inspect_watermark(rescaled(marked, 0.7))
    assert reading is not None
    assert (reading.output_id, reading.version) == (output_id, 4)
    assert reading.scale == pytest.approx(358 / 512, rel=0.003)


@pytest.mark.parametrize("side", SIZES)
def test_outputs_marked_before_version_3_still_verify(side: int) -> None:
    # Version 2, the block-order mark every output carried until now, made the old way.
    output_id = new_output_id()
    old_output = _embed(scene(side, side, seed=side), output_id, 2, _quantise)
    reading = inspect_watermark(reencode(old_output, "JPEG", quality=75))
    assert reading is not None
    assert (reading.output_id, reading.version) == (output_id, 2)


@pytest.mark.parametrize("side", SIZES)
def test_outputs_marked_with_version_3_still_verify_after_a_rescale(side: int) -> None:
    # Version 3, the tiled mark with the Reed-Solomon code (outputs of 2026-12).
    output_id = new_output_id()
    old_output = _embed(scene(side, side, seed=side + 3), output_id, 3, quantise_tiled)
    reading = inspect_watermark(reencode(rescaled(old_output, 0.7), "PNG"))
    assert reading is not None
    assert (reading.output_id, reading.version) == (output_id, 3)


def test_version_4_costs_no_more_quality_than_version_2() -> None:
    original = scene(512, 512, seed=21)
    output_id = new_output_id()
    tiled = psnr(original, embed_watermark(original, output_id))
    block_order = psnr(original, _embed(original, output_id, 2, _quantise))
    assert tiled > 38.0
    assert abs(tiled - block_order) < 0.5


def test_edited_unmarked_images_never_read_as_marked() -> None:
    edits: list[Callable[[Image.Image], Image.Image]] = [
        crop_to_three_quarters,
        lambda image: rescaled(image, 0.7),
        lambda image: reencode(rescaled(image, 1.6), "JPEG", quality=80),
        screenshot,
    ]
    claims = [
        (name, number)
        for name, image in unmarked_images()[::3]
        for number, edit in enumerate(edits)
        if image.width * image.height >= 256 * 256 and read_watermark(edit(image)) is not None
    ]
    assert claims == []


def test_reading_a_2048_pixel_picture_stays_in_bounded_memory() -> None:
    # The worst case: nothing to find, so every rescale candidate is searched.
    noise = np.random.default_rng(3).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    picture = Image.fromarray(noise)
    tracemalloc.start()
    try:
        assert read_watermark(picture) is None
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"
