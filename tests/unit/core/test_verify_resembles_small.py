"""Small outputs (256 px) whose copies were shrunk and re-encoded twice still resemble
them, and what was drawn on such a copy still keeps it from resembling anything; a small
output in a frame is not called cropped, and an output's own plain border is not a
frame.

The first four cases were copies of unmarked outputs that /verify traced to nothing
(found with ``bench/small_copies.py``); the last two, wrong words found by a hostile
review."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.support.picture_edits import small_logo, text_over
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.support.watermark_images import reencode, scene
from tests.unit.core.test_picture_frame import framed
from tests.unit.provenance.test_watermark import illustration, telegram_photo
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


async def test_a_small_copy_that_rings_at_a_saturated_edge_resembles_its_output() -> None:
    """Shown at 0.7x in a frame, JPEG, then Telegram: the subject's edge rings with values
    neither white nor the subject has, and halved chroma moves the mean colour of its
    finest blocks by up to 16, which read as edits (7 blocks) before the likeness allowed
    for what a re-encoding of the output has there. Text and a logo drawn on the same
    copy still differ."""
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(seed=0), mark=False)
    made = await stored_picture(world, output_id)

    report = await check(world, BOB, telegram_photo(screenshot_at(made, 0.7, 3, 200)))
    assert report.verdict is VerifyVerdict.RESEMBLES, report.text
    assert report.output_id == output_id

    for edited in (small_logo(made, 0.06), text_over(made, 40, (40, 60, 250))):
        report = await check(world, BOB, telegram_photo(screenshot_at(edited, 0.7, 3, 200)))
        assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_a_copy_at_half_size_that_cannot_be_placed_is_compared_at_its_size() -> None:
    """A 256 px illustration at 0.5x through Telegram: the placement finds no fit, so the
    copy is compared whole, and was compared with the output at full size, where the
    detail the copy lost reads as edits."""
    world = verify_world()
    output_id = await deliver(world, ALICE, illustration(7).resize((256, 256)), mark=False)
    made = await stored_picture(world, output_id)

    report = await check(world, BOB, telegram_photo(rescaled(made, 0.5)))
    assert report.verdict is VerifyVerdict.RESEMBLES, report.text
    assert report.output_id == output_id

    report = await check(world, BOB, telegram_photo(rescaled(small_logo(made, 0.1), 0.5)))
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
