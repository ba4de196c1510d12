"""Issue 14: /verify on cropped and rescaled copies. The picture is placed on the stored
output and compared with the part of it that it shows: a crop that keeps the content is a
"cropped copy" made by the maker, a rescale a "resized copy"; a crop with something pasted
over it is an altered copy (with how much differs); the same crop of another picture
carrying the output's mark is traced to no one.

Real watermarked outputs of several kinds (tests/unit/core/test_verify_regions.py), the
real reader, and the edits of tests/unit/provenance/test_watermark_geometry.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image
from tests.fakes.core import person
from tests.support.picture_edits import paste
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.core.test_verify_regions import IDS, PICTURES
from tests.unit.provenance.test_watermark import illustration, reencode, scene
from tests.unit.provenance.test_watermark_geometry import crop_left_tenth, rescaled, screenshot

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import embed_watermark

ALICE = person("alice")
BOB = person("bob")


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_a_tenth_cropped_off_one_side_is_a_cropped_copy_by_the_maker(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    for name, edit in [("as-cropped", crop_left_tenth), ("jpeg-q75", jpeg_after_crop)]:
        report = await check(world, BOB, edit(made))
        assert report.verdict is VerifyVerdict.MADE, (name, report.text)
        assert report.text.startswith(
            f"Made with stylebot: a cropped copy of output {output_id} "
            "(it shows 90% of that picture)\n"
        ), (name, report.text)
        assert "by: <@alice>, named 'Alice' when it was made" in report.text
        assert (report.shown_percent, report.scale_percent, report.differs_percent) == (
            90,
            100,
            0,
        )
        assert report.output is not None
        assert report.output.id == output_id


def jpeg_after_crop(image: Image.Image) -> Image.Image:
    return reencode(crop_left_tenth(image), "JPEG", quality=75)


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_a_rescale_that_is_not_undone_is_a_resized_copy_by_the_maker(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    report = await check(world, BOB, rescaled(made, 0.7))
    assert report.verdict is VerifyVerdict.MADE, report.text
    assert report.text.startswith(
        f"Made with stylebot: a resized copy of output {output_id} (at 70% of its size)\n"
    ), report.text
    assert (report.shown_percent, report.scale_percent, report.differs_percent) == (100, 70, 0)


async def test_a_crop_that_is_also_rescaled_says_both() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(768, 512, seed=61))
    made = await stored_picture(world, output_id)
    report = await check(world, BOB, rescaled(crop_left_tenth(made), 0.8))
    assert report.verdict is VerifyVerdict.MADE, report.text
    assert report.text.startswith(
        f"Made with stylebot: a cropped and resized copy of output {output_id} "
        "(it shows 90% of that picture, at 80% of its size)\n"
    ), report.text


def crop_and_logo(image: Image.Image) -> Image.Image:
    """A tenth cropped off, then a picture pasted over a tenth of what is left."""
    return paste(crop_left_tenth(image), illustration(62).resize((200, 200)), 0.1)


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_a_crop_with_a_pasted_logo_is_an_altered_copy_and_says_how_much(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    report = await check(world, BOB, crop_and_logo(made))
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert report.output is None, "an altered copy is not attributed as made"
    assert report.differs_percent is not None
    assert 7 <= report.differs_percent <= 16, report.differs_percent
    assert report.text.startswith(
        f"An altered copy of stylebot output {output_id}, cropped to 90% of it: about "
        f"{report.differs_percent}% of this picture differs from that output"
    ), report.text
    assert "Made with stylebot" not in report.text


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_the_same_crop_of_another_picture_with_the_mark_is_never_made(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    """The crop of the output is the maker's; the same crop of an unrelated picture that
    carries the output's id (copied from a file name) is traced to no one."""
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    assert (await check(world, BOB, crop_left_tenth(made))).verdict is VerifyVerdict.MADE

    unrelated = scene(made.width, made.height, seed=63)
    report = await check(world, BOB, crop_left_tenth(embed_watermark(unrelated, output_id)))
    assert report.verdict is VerifyVerdict.MISMATCH, report.text
    assert report.output_id == output_id
    assert report.output is None
    assert report.differs_percent is not None
    assert report.differs_percent >= 90
    for private in ("alice", "Alice", "a lighthouse", "seed"):
        assert private not in report.text


async def test_a_screenshot_says_its_frame_was_left_out_and_a_collage_what_was_added() -> None:
    """Shown at 85% and captured with a 4 px frame: the output's pixels are all there and
    the frame is plain (a window's edge), so it is left out, as the likeness leaves it
    out, and the report says so (until 2026-12-07 it read "an altered copy ... or added
    around it", which made every screenshot sound edited); a picture set beside another
    is an altered copy, with the other's share."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=64))
    made = await stored_picture(world, output_id)

    framed = await check(world, BOB, screenshot(made))
    assert framed.verdict is VerifyVerdict.MADE, framed.text
    assert f"a resized copy of output {output_id} (at 85% of its size)" in framed.text
    assert "inside a plain frame (left out to compare)" in framed.text

    side_by_side = Image.new("RGB", (512 + 128, 512), "white")
    side_by_side.paste(made, (0, 0))
    side_by_side.paste(illustration(65).resize((128, 512)), (512, 0))
    collage = await check(world, BOB, side_by_side)
    assert collage.verdict is VerifyVerdict.ALTERED, collage.text
    assert collage.differs_percent is not None
    assert 17 <= collage.differs_percent <= 23, collage.differs_percent
