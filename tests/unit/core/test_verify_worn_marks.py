"""Marked copies as screenshots make them: a copy too worn for the blind reader (a small
output shown at 80% in a frame, captured as JPEG and sent through Telegram) is traced by
its mark where the likeness lookup placed it on the output, and a screenshot's plain
frame is left out of the comparison as the likeness leaves it out, rather than counted
as something "added around" the maker's picture.

Before: the worn copies read "No stylebot watermark found"; a marked output in a plain
frame read "an altered copy ... (covered, replaced or pasted over, or added around it)"."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.support.watermark_images import reencode, scene, telegram_photo
from tests.unit.core.test_picture_frame import framed
from tests.unit.core.test_verify_resembles_small import (
    outlined,
    screenshot_at,
    subject_on_white,
    with_white_border,
)

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import read_watermark

ALICE = person("alice")
BOB = person("bob")


def worn(made: Image.Image) -> Image.Image:
    """At 80% in a light grey frame, captured as JPEG q80, sent as a Telegram photo."""
    return telegram_photo(screenshot_at(made, 0.8, 6, 230))


async def test_a_copy_too_worn_to_read_blind_is_traced_by_its_mark_where_it_sits() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(2))
    copy = worn(await stored_picture(world, output_id))
    # The blind reader finds no placement for this copy, whatever the id (8 of 8 tried);
    # its bits agree with the output's in 117-122 of 128 where the likeness placed it.
    assert read_watermark(copy) is None

    report = await check(world, BOB, copy)
    assert report.output_id == output_id, report.text
    # The subject's edges ring after JPEG at 80% as much as a line drawn there (below)
    # changes them: the words say the two can't be told apart.
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert "worn by shrinking and re-compression" in report.text
    assert "inside a plain frame (left out to compare)" in report.text
    assert "added around" not in report.text


async def test_a_line_drawn_on_a_worn_copy_keeps_it_an_altered_copy() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(2))
    copy = worn(outlined(await stored_picture(world, output_id)))
    assert read_watermark(copy) is None

    report = await check(world, BOB, copy)
    assert report.output_id == output_id, report.text
    assert report.verdict is VerifyVerdict.ALTERED, report.text


async def test_a_worn_copy_of_an_unmarked_output_carries_no_mark() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(2), mark=False)
    report = await check(world, BOB, worn(await stored_picture(world, output_id)))
    assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_a_marked_output_in_a_plain_frame_is_made_by_its_maker() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    made = await stored_picture(world, output_id)

    for copy in (reencode(framed(made, 6, 230), "PNG"), reencode(framed(made, 3, 20), "PNG")):
        assert read_watermark(copy) == output_id
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.MADE, report.text
        assert "inside a plain frame (left out to compare)" in report.text
        assert report.shown_percent == 100


async def test_a_frame_with_a_caption_in_it_is_still_added_around_the_picture() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=3))
    captioned = framed(await stored_picture(world, output_id), 24, 230)
    font = ImageFont.load_default(size=16)
    ImageDraw.Draw(captioned).text((40, 2), "my own work, honest", fill=(20, 20, 20), font=font)

    report = await check(world, BOB, reencode(captioned, "PNG"))
    assert report.output_id == output_id, report.text
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert "added around it" in report.text
    assert "frame" not in report.text


async def test_text_on_a_marked_outputs_own_border_is_not_a_frame() -> None:
    """The marked counterpart of the likeness's hostile case (test_verify_resembles_small):
    light grey text on the output's own white border passes for a plain frame; left out,
    the rest would be "made by". The frame lands on the output's own white pixels, so
    the picture is compared as it came, text and all."""
    border = 16
    world = verify_world()
    output_id = await deliver(world, ALICE, with_white_border(8, border))
    signed = (await stored_picture(world, output_id)).copy()
    draw = ImageDraw.Draw(signed)
    font = ImageFont.load_default(size=11)
    draw.text((30, 256 - border), "(c) somebody else", fill=(212, 212, 212), font=font)
    draw.text((30, 0), "not by stylebot", fill=(212, 212, 212), font=font)

    report = await check(world, BOB, reencode(signed, "PNG"))
    assert report.output_id == output_id, report.text
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert "frame" not in report.text
