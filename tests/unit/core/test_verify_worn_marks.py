"""A copy too worn for the blind reader (a small output shown at 80% in a frame, captured
as JPEG and sent through Telegram) is traced by its mark where the likeness lookup placed
it on the output, and then said of as any marked copy: a line drawn on it still makes it
an altered copy, and a copy of an unmarked output carries no mark. Before, each of these
read "No stylebot watermark found"."""

from __future__ import annotations

import io

from PIL import Image
from tests.fakes.core import person
from tests.support.verify_world import (
    VerifyWorld,
    check,
    deliver,
    stored_picture,
    verify_world,
)
from tests.support.watermark_images import reencode, scene, telegram_photo
from tests.unit.core.test_verify_resembles_small import outlined, screenshot_at, subject_on_white
from tests.unit.provenance.test_watermark_geometry import rescaled

from stylebot.bot.core.commands import IncomingFile, Verify
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import VerifyReport, VerifyVerdict
from stylebot.provenance.watermark import read_watermark

ALICE = person("alice")
BOB = person("bob")
WORN = "worn by shrinking and re-compression"


def worn(made: Image.Image) -> Image.Image:
    """At 80% in a light grey frame, captured as JPEG q80, sent as a Telegram photo."""
    return telegram_photo(screenshot_at(made, 0.8, 6, 230))


async def check_jpeg(world: VerifyWorld, who: Requester, picture: Image.Image) -> VerifyReport:
    """/verify of the picture sent as a JPEG file (as Telegram sends photos)."""
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=95)
    report = await world.bot.handle(Verify(who, IncomingFile("photo.jpg", buffer.getvalue())))
    assert isinstance(report, VerifyReport), report
    return report


async def test_a_copy_too_worn_to_read_blind_is_traced_by_its_mark_where_it_sits() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, subject_on_white(2))
    copy = worn(await stored_picture(world, output_id))
    # The blind reader finds no placement for this copy, whatever the id (8 of 8 tried);
    # its bits agree with the output's in 117-122 of 128 where the likeness placed it.
    assert read_watermark(copy) is None

    report = await check_jpeg(world, BOB, copy)
    assert report.output_id == output_id, report.text
    # The subject's edges ring after JPEG at 80% as much as a line drawn there (below)
    # changes them, and the JPEG's smeared frame is not left out of a "made by"
    # comparison (test_verify_marked_frames): the words say what can't be told apart.
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert WORN in report.text
    # A PNG went through no re-compression on its way here: no such words for it.
    assert WORN not in (await check(world, BOB, copy)).text


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


async def test_a_slightly_shrunk_copy_with_a_third_pasted_over_is_not_called_worn() -> None:
    """The words that differences may be wear are for lossy files shrunk to 85% or less
    that differ in a fifth or less within the output (a hostile review: a 95% PNG with
    27% pasted over got them)."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=5))
    pasted = (await stored_picture(world, output_id)).copy()
    pasted.paste(scene(300, 200, seed=99), (0, 0))
    for factor in (0.95, 0.7):
        copy = rescaled(pasted, factor)
        for report in (await check(world, BOB, copy), await check_jpeg(world, BOB, copy)):
            assert report.verdict is VerifyVerdict.ALTERED, report.text
            assert WORN not in report.text


async def test_a_worn_copy_names_its_own_output_among_twins() -> None:
    """The same picture made three times (two marks, one unmarked), worn alike: each
    marked copy names its own output, never its twin; the unmarked one's names none.
    Only the closest of equally close candidates is given the full placement search:
    the second was never checked (a hostile review: 3 of 4 such copies untraced)."""
    world = verify_world()
    alices = await deliver(world, ALICE, subject_on_white(2), "alice's prompt")
    carols = await deliver(world, person("carol"), subject_on_white(2), "carol's prompt")
    unmarked = await deliver(world, ALICE, subject_on_white(2), "unmarked", mark=False)

    for output_id in (alices, carols):
        report = await check(world, BOB, worn(await stored_picture(world, output_id)))
        assert report.output_id == output_id, report.text
    report = await check(world, BOB, worn(await stored_picture(world, unmarked)))
    assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_a_worn_copy_of_a_private_output_keeps_its_prompt_from_others() -> None:
    world = verify_world()
    output_id = await deliver(world, person("alice", server=None), subject_on_white(2), "hush")
    copy = worn(await stored_picture(world, output_id))

    report = await check(world, BOB, copy)
    assert report.output_id == output_id, report.text
    assert "hush" not in report.text
    mine = await check(world, person("alice", server=None), copy)
    assert "hush" in mine.text


async def test_a_worn_copy_of_one_of_two_twins_never_names_the_other() -> None:
    """The same scene made by Alice, then by Carol, each with its own mark; a copy of
    Carol's at 65% through JPEG and Telegram is not read blind, and resembles both alike.
    The likeness named the first of them, Alice's, with Alice's record (a hostile
    review: 17 of 18 such copies). Where it sat on Alice's, such a copy carries Carol's
    mark with 96-102 of 128 bits agreeing: when that is short of 100, the report names
    both outputs and neither maker. At 80% the mark decides."""
    for seed, side in ((0, 166), (2, 166), (4, 166), (0, 205), (2, 205)):
        world = verify_world()
        await deliver(world, ALICE, scene(256, 256, seed=seed), "alice's prompt")
        carols = await deliver(world, person("carol"), scene(256, 256, seed=seed), "hers")
        made = await stored_picture(world, carols)
        shrunk = made.resize((side, side), Image.Resampling.LANCZOS)
        copy = telegram_photo(reencode(shrunk, "JPEG", quality=80))

        report = await check(world, BOB, copy)
        assert "alice" not in report.text, report.text
        if side == 205:
            assert report.output_id == carols, report.text
        elif report.output_id is None:
            assert "resembles several stylebot outputs" in report.text, report.text
            assert carols in report.text
        else:
            assert report.output_id == carols, report.text
