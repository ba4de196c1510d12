"""Small outputs (256 px) whose copies were shrunk and re-encoded twice still resemble
them, and a line drawn on such a copy still keeps it from resembling anything; a small
output in a frame is not called cropped, and an output's own plain border is not a
frame.

The cases were found with ``bench/small_copies.py`` (copies of unmarked outputs that
/verify traced to nothing) and by hostile reviews (wrong words, a false likeness)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.support.watermark_images import reencode, scene
from tests.unit.core.test_picture_frame import framed
from tests.unit.provenance.test_watermark import telegram_photo
from tests.unit.provenance.test_watermark_geometry import rescaled

from stylebot.bot.core.fingerprints import RESEMBLES_MAX_BITS
from stylebot.bot.core.perceptual import hamming, perceptual_hash
from stylebot.bot.core.picture_frame import without_plain_frame
from stylebot.bot.core.replies import VerifyVerdict

ALICE = person("alice")
BOB = person("bob")


def screenshot_at(image: Image.Image, factor: float, border: int, grey: int) -> Image.Image:
    """Shown at ``factor`` in a plain frame, captured as JPEG q80."""
    return reencode(framed(rescaled(image, factor), border, grey), "JPEG", quality=80)


def subject_on_white(seed: int) -> Image.Image:
    """A subject on a plain background: a scene of fine, saturated colour on white."""
    picture = Image.new("RGB", (256, 256), "white")
    picture.paste(scene(154, 154, seed=seed, cell=16, grain_sd=2), (51, 51))
    return picture


def outlined(picture: Image.Image) -> Image.Image:
    """A 1 px line a pixel outside the subject of :func:`subject_on_white`, halfway
    between the white and the subject's edge in colour."""
    pixels = np.asarray(picture, dtype=np.float64)
    edge, white = pixels[51:205, 51:54].reshape(-1, 3).mean(axis=0), pixels[2, 2]
    colour = tuple(int(v) for v in white + 0.5 * (edge - white))
    lined = picture.copy()
    ImageDraw.Draw(lined).rectangle((50, 50, 205, 205), outline=colour, width=1)
    return lined


async def test_a_thin_line_beside_the_subject_of_a_small_copy_keeps_it_unclaimed() -> None:
    """The outlined output shrunk to 0.7x through Telegram. Allowing a shrunk copy the
    values the output's own JPEG has beside a hard edge (tried, to trace copies whose
    JPEG rings there) made this copy "resemble" the output, and such lines passed in 16
    of 128 hostile copies that the likeness refused before; the allowance was taken out."""
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(seed=0), mark=False)
    made = await stored_picture(world, output_id)

    report = await check(world, BOB, telegram_photo(rescaled(outlined(made), 0.7)))
    assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_a_screenshot_whose_inside_hashes_farther_than_the_whole_resembles() -> None:
    """The frame taken off with its margin moves this copy's hash 8 bits from the
    output's, past the limit, while the picture as it came is 4 bits off: the output,
    found by the whole picture's hash, was compared only with the whole picture, which
    its frame keeps from matching."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(256, 256, seed=15), mark=False)
    made = await stored_picture(world, output_id)
    copy = screenshot_at(made, 0.8, 4, 200)
    inside = without_plain_frame(copy, 2)
    assert inside is not None
    stored_hash = perceptual_hash(made)
    assert hamming(perceptual_hash(copy), stored_hash) <= RESEMBLES_MAX_BITS
    assert hamming(perceptual_hash(inside), stored_hash) > RESEMBLES_MAX_BITS

    report = await check(world, BOB, copy)
    assert report.verdict is VerifyVerdict.RESEMBLES, report.text
    assert report.output_id == output_id
    assert "inside a plain frame" in report.text


def test_a_frame_as_bright_as_the_pictures_edge_is_found_by_its_colour() -> None:
    """The picture's left edge is a red as bright as the grey frame: by brightness alone
    its first lines read as frame, and the frame was found 30 px wide on that side. By
    colour, JPEG's smear of the red into the frame may take a pixel of it."""
    picture = scene(256, 256, seed=2)
    ImageDraw.Draw(picture).rectangle((0, 0, 40, 255), fill=(170, 52, 60))  # brightness 88
    copy = reencode(framed(picture, 4, 88), "JPEG", quality=80)
    inside = without_plain_frame(copy)
    assert inside is not None
    assert picture.width - inside.width in (0, 1)
    assert inside.height == picture.height


async def test_an_untouched_small_output_in_a_frame_is_not_called_cropped() -> None:
    """The frame is taken off with 2 px of the picture next to it (JPEG smears them): at
    256 px those were 3% of the output, and the copy read "cropped to 97% of it"."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(256, 256, seed=4), mark=False)
    made = await stored_picture(world, output_id)

    for copy in (reencode(framed(made, 6, 120), "PNG"), screenshot_at(made, 0.9, 4, 30)):
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.RESEMBLES, report.text
        assert "inside a plain frame" in report.text
        assert "cropped" not in report.text, report.text
        assert report.shown_percent == 100


def with_white_border(seed: int, border: int) -> Image.Image:
    """An output with its own white border around a scene."""
    picture = Image.new("RGB", (256, 256), "white")
    picture.paste(scene(256 - 2 * border, 256 - 2 * border, seed=seed), (border, border))
    return picture


async def test_text_on_an_outputs_own_border_is_not_a_frame_around_a_crop() -> None:
    """Light grey text written on the output's own white border is plain enough to pass
    for a screenshot's frame, and the rest matched: the copy "closely resembled" the
    output, "cropped to 86% of it, inside a plain frame" (a hostile review). The frame
    lands on the output's own white pixels, so only the picture as it came is compared,
    and the text differs. Untouched, the output still resembles itself, unframed. (The
    picture without this 16 px border hashes too far from the output to be compared on
    its own; it is, since the picture as it came is near.)"""
    border = 16
    world = verify_world()
    output_id = await deliver(world, ALICE, with_white_border(8, border), mark=False)
    made = await stored_picture(world, output_id)

    signed = made.copy()
    draw = ImageDraw.Draw(signed)
    font = ImageFont.load_default(size=11)
    draw.text((30, 256 - border), "(c) somebody else", fill=(212, 212, 212), font=font)
    draw.text((30, 0), "not by stylebot", fill=(212, 212, 212), font=font)
    for copy in (reencode(signed, "PNG"), reencode(signed, "JPEG", quality=90)):
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.NO_MARK, report.text

    report = await check(world, BOB, reencode(made, "JPEG", quality=90))
    assert report.verdict is VerifyVerdict.RESEMBLES, report.text
    assert "frame" not in report.text
    assert "cropped" not in report.text
