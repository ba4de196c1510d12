"""A marked copy in a screenshot's plain frame: the frame is left out of the comparison
and named (before, it was something "added around" the maker's picture, so every framed
screenshot read as an altered copy), but only a frame plain to the pixel: text, a
caption, a frame that is the output's own border, or an edit along the picture's edge
keep the copy an altered copy with its record. Cases from a hostile review."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.support.watermark_images import reencode, scene
from tests.unit.core.test_picture_frame import framed
from tests.unit.core.test_verify_resembles_small import with_white_border

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import read_watermark

ALICE = person("alice")
BOB = person("bob")
LEFT_OUT = "inside a plain frame (left out to compare)"


async def test_a_marked_output_in_a_plain_frame_is_made_by_its_maker() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    made = await stored_picture(world, output_id)

    for copy in (reencode(framed(made, 6, 230), "PNG"), reencode(framed(made, 3, 20), "PNG")):
        assert read_watermark(copy) == output_id
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.MADE, report.text
        assert LEFT_OUT in report.text
        assert report.shown_percent == 100


def captioned(made: Image.Image, top: int) -> Image.Image:
    """In a 24 px frame of grey 230, with a caption in grey 190 ``top`` px down."""
    copy = framed(made, 24, 230)
    font = ImageFont.load_default(size=14)
    text = "my own work, not stylebot's -- Bob"
    ImageDraw.Draw(copy).text((40, top), text, fill=(190,) * 3, font=font)
    return copy


async def test_a_caption_in_the_frame_is_added_around_the_picture() -> None:
    """9-22 px down, the caption lies within the 16 px next to the picture where the
    frame finder allows for JPEG's smear (up to 48 of 255): a frame left out of a "made
    by" comparison gets no such allowance."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    made = await stored_picture(world, output_id)

    for top in (2, 9):
        report = await check(world, BOB, reencode(captioned(made, top), "PNG"))
        assert report.output_id == output_id, report.text
        assert report.verdict is VerifyVerdict.ALTERED, report.text
        assert "added around it" in report.text
        assert "frame" not in report.text


def signed_on_its_border(made: Image.Image, border: int) -> Image.Image:
    """Light grey text written on a 256 px output's own white border, top and bottom."""
    signed = made.copy()
    draw = ImageDraw.Draw(signed)
    font = ImageFont.load_default(size=11)
    draw.text((30, 256 - border), "(c) somebody else", fill=(212, 212, 212), font=font)
    draw.text((30, 0), "not by stylebot", fill=(212, 212, 212), font=font)
    return signed


async def test_text_on_a_marked_outputs_own_border_is_not_a_frame() -> None:
    """Light grey text on the output's own white border, with and without a light grey
    frame around it (whose finder takes the white border, 25 of 255 off its grey, for
    more frame): left out, the rest read "made by, cropped to 77%"."""
    border = 16
    world = verify_world()
    output_id = await deliver(world, ALICE, with_white_border(8, border))
    made = await stored_picture(world, output_id)
    signed = signed_on_its_border(made, border)

    for copy in (signed, framed(signed, 6, 230), framed(signed, 6, 225)):
        report = await check(world, BOB, reencode(copy, "PNG"))
        assert report.output_id == output_id, report.text
        assert report.verdict is VerifyVerdict.ALTERED, report.text
        assert "frame" not in report.text
    report = await check(world, BOB, reencode(framed(made, 6, 230), "PNG"))
    assert "cropped" not in report.text, report.text


async def test_a_crop_in_a_frame_is_a_cropped_copy_with_its_record() -> None:
    """The picture without its frame, taken off with 2 px of the picture, could not be
    placed on the output and compared whole differed everywhere: the copy read as a mark
    copied onto another picture, record withheld. Taken off alone, it is placed."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    crop = (await stored_picture(world, output_id)).crop((40, 40, 472, 472))

    for border in (20, 40):
        report = await check(world, BOB, reencode(framed(crop, border, 230), "PNG"))
        assert report.output_id == output_id, report.text
        assert report.verdict is VerifyVerdict.MADE, report.text
        assert "a cropped copy" in report.text
        assert LEFT_OUT in report.text
        assert report.shown_percent == 71


async def test_text_on_an_unmarked_outputs_own_border_in_a_frame_resembles_nothing() -> None:
    """The likeness's counterpart: with the own-border guard at 24 of 255, the output's
    white border inside a grey 225 or 230 frame was taken for frame, and the copy read
    "closely resembles ... cropped to 77%"."""
    border = 16
    world = verify_world()
    output_id = await deliver(world, ALICE, with_white_border(8, border), mark=False)
    signed = signed_on_its_border(await stored_picture(world, output_id), border)

    for grey in (225, 230):
        report = await check(world, BOB, reencode(framed(signed, 6, grey), "PNG"))
        assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_an_edit_along_the_pictures_edge_is_not_left_out_with_its_frame() -> None:
    """Black dashes over the output's outermost 2 px, in a plain frame: a frame used to
    be taken off with 2 px of the picture (JPEG smears them), and the dashes with it. A
    frame plain to the pixel has no smear, and goes alone."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    dashed = (await stored_picture(world, output_id)).copy()
    draw = ImageDraw.Draw(dashed)
    for left in range(0, 512, 16):
        draw.rectangle((left, 0, left + 7, 1), fill=(0, 0, 0))

    report = await check(world, BOB, reencode(framed(dashed, 6, 230), "PNG"))
    assert report.output_id == output_id, report.text
    assert report.verdict is VerifyVerdict.ALTERED, report.text
