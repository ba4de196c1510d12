"""/verify says "made by" only for the output itself, re-encoded or rescaled; a banner
over 35% of it or another picture pasted over 25% of it is an "altered copy" (with how
much differs), and a copied mark on another picture is traced to no one.

Varied pictures (smooth fields with grain, flat illustrations, a subject on a plain
background) stand in for generated ones; each is delivered as a real watermarked output.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image
from tests.fakes.core import person
from tests.support.picture_edits import banner, paste, small_logo, text_over
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.provenance.test_watermark import (
    half_and_back,
    illustration,
    reencode,
    scene,
    subject_on_background,
    telegram_photo,
)

from stylebot.bot.core.replies import VerifyVerdict
from stylebot.provenance.watermark import embed_watermark

ALICE = person("alice")
BOB = person("bob")

PICTURES: list[tuple[str, Callable[[], Image.Image]]] = [
    ("scene", lambda: scene(512, 512, seed=41)),
    ("wide-scene", lambda: scene(768, 512, seed=42)),
    ("illustration", lambda: illustration(43)),
    ("subject-on-white", lambda: subject_on_background("white", seed=44)),
]
IDS = [name for name, _ in PICTURES]


def jpeg_q75(image: Image.Image) -> Image.Image:
    return reencode(image, "JPEG", quality=75)


REENCODINGS: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
    ("as-made", lambda i: i),
    ("jpeg-q75", jpeg_q75),
    ("half-and-back", half_and_back),
    ("telegram", telegram_photo),
]


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_re_encoded_or_rescaled_outputs_are_made_by_their_maker(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    for name, edit in REENCODINGS:
        report = await check(world, BOB, edit(made))
        assert report.verdict is VerifyVerdict.MADE, (name, report.text)
        assert report.text.startswith(f"Made with stylebot: output {output_id}"), name
        assert report.differs_percent == 0, name


EDITS: list[tuple[str, Callable[[Image.Image], Image.Image], range]] = [
    ("black-banner-35%", lambda i: banner(i, 0.35), range(30, 46)),
    ("grey-banner-35%-top", lambda i: banner(i, 0.35, "grey", at_top=True), range(30, 46)),
    ("pasted-25%", lambda i: paste(i, scene(400, 400, seed=7), 0.25), range(20, 33)),
    (
        "pasted-25%-jpeg",
        lambda i: reencode(paste(i, illustration(8), 0.25), "JPEG", quality=75),
        range(20, 33),
    ),
]


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_a_banner_or_a_paste_makes_an_altered_copy_and_says_how_much(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    for name, edit, about in EDITS:
        report = await check(world, BOB, edit(made))
        assert report.verdict is VerifyVerdict.ALTERED, (name, report.text)
        assert report.output is None, "an altered copy is not attributed as made"
        assert report.differs_percent in about, (name, report.differs_percent)
        assert f"altered copy of stylebot output {output_id}" in report.text
        assert f"about {report.differs_percent}% of this picture differs" in report.text
        assert "Made with stylebot" not in report.text


async def test_a_mark_copied_onto_another_picture_names_no_one() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=45))
    forged = embed_watermark(illustration(46), output_id)
    report = await check(world, BOB, forged)
    assert report.verdict is VerifyVerdict.MISMATCH
    assert report.output_id == output_id
    for private in ("alice", "Alice", "a lighthouse", "seed"):
        assert private not in report.text


ALTERED_OR_UNTRACED = {VerifyVerdict.ALTERED, VerifyVerdict.MISMATCH}
SMALL_EDITS: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
    ("white-text-11px", lambda i: text_over(i, 11, (255, 255, 255))),
    ("black-text-11px", lambda i: text_over(i, 11, (0, 0, 0))),
    ("red-text-13px", lambda i: text_over(i, 13, (255, 0, 0))),
    ("red-text-13px-jpeg", lambda i: jpeg_q75(text_over(i, 13, (255, 0, 0)))),
    ("logo-3%", lambda i: small_logo(i, 0.03)),
    ("logo-2%-telegram", lambda i: telegram_photo(small_logo(i, 0.02))),
]


@pytest.mark.parametrize(("kind", "make"), PICTURES, ids=IDS)
async def test_text_written_over_it_or_a_small_logo_is_never_made_by_the_maker(
    kind: str, make: Callable[[], Image.Image]
) -> None:
    """Thin strokes and small patches average away at the block grid's size; the finer
    check catches them, and no share of differing blocks at all passes as "made by"."""
    world = verify_world()
    output_id = await deliver(world, ALICE, make())
    made = await stored_picture(world, output_id)
    for name, edit in SMALL_EDITS:
        report = await check(world, BOB, edit(made))
        # Lines of text over the whole picture touch most blocks: an altered copy, or
        # (beyond ALTERED_MAX_SHARE) one that can't be traced; never the maker's own.
        expected = {VerifyVerdict.ALTERED} if "logo" in name else ALTERED_OR_UNTRACED
        assert report.verdict in expected, (name, report.text)
        assert report.output is None
        assert report.differs_percent is not None
        assert report.differs_percent >= 1, name
        assert f"about {report.differs_percent}% of" in report.text
        assert "Made with stylebot" not in report.text


async def test_a_text_overlay_on_a_1024_output_is_altered() -> None:
    """The reviewer's case: 16 lines of 13 px red text over a marked 1024 px picture."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(1024, 1024, seed=48))
    made = await stored_picture(world, output_id)
    report = await check(world, BOB, text_over(made, 13, (255, 0, 0)))
    assert report.verdict in ALTERED_OR_UNTRACED, report.text
    assert report.output is None
    assert "Made with stylebot" not in report.text


async def test_an_output_stretched_to_another_shape_is_not_made_by_its_maker() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=49))
    made = await stored_picture(world, output_id)
    report = await check(world, BOB, made.resize((528, 512), Image.Resampling.LANCZOS))
    assert report.verdict is not VerifyVerdict.MADE, report.text
    assert report.verdict is not VerifyVerdict.ALTERED, report.text
    assert "Made with stylebot" not in report.text
