"""A picture without a watermark "resembles" a stored output only when its fingerprint
is within a few bits of that output's (found through the band index) and every region
matches; unrelated pictures never do."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.support.picture_edits import banner, paste, small_logo, text_over
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.provenance.test_watermark import (
    illustration,
    reencode,
    scene,
    subject_on_background,
    telegram_photo,
    unmarked_images,
)
from tests.unit.provenance.test_watermark_geometry import rescaled, screenshot

from stylebot.bot.core.fingerprints import RESEMBLES_MAX_BITS
from stylebot.bot.core.hash_bands import band_probes
from stylebot.bot.core.perceptual import PerceptualHash, hamming, perceptual_hash
from stylebot.bot.core.replies import VerifyVerdict

ALICE = person("alice")
BOB = person("bob")


async def test_an_output_whose_mark_is_gone_resembles_it_and_names_its_maker() -> None:
    world = verify_world()
    # Delivered without a mark: what is left of an output whose mark was destroyed.
    output_id = await deliver(world, ALICE, scene(512, 512, seed=11), "a lighthouse", mark=False)
    record = await world.bot.deps.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.fingerprint is not None, "kept when the image was delivered"
    made = await stored_picture(world, output_id)

    for copy in (reencode(made, "JPEG", quality=75), telegram_photo(made)):
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.RESEMBLES, report.text
        assert report.output_id == output_id
        assert report.output is None, "a likeness is not attributed as made"
        assert report.text.startswith("No stylebot watermark found in this image. But it")
        assert f"closely resembles stylebot output {output_id}" in report.text
        assert "<@alice>" in report.text

    # A likeness is claimed only when every region matches: not for an edited copy.
    covered = await check(world, BOB, banner(made, 0.35))
    assert covered.verdict is VerifyVerdict.NO_MARK
    assert covered.output_id is None


async def test_a_screenshot_or_rescale_whose_mark_is_gone_resembles_its_output() -> None:
    """A screenshot (shown at 85%, a 4 px plain frame around it), the same through
    Telegram, and a 0.6x rescale saved as JPEG q80: the frame is left out and the
    rescale placed by the full search, so each is traced to the output it shows."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=21), mark=False)
    made = await stored_picture(world, output_id)
    copies = [
        (screenshot(made), "resized to 85%, inside a plain frame"),
        (telegram_photo(screenshot(made)), "resized to 85%, inside a plain frame"),
        (reencode(rescaled(made, 0.6), "JPEG", quality=80), "resized to 60%:"),
    ]
    for copy, how in copies:
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.RESEMBLES, (how, report.text)
        assert report.output_id == output_id
        assert f"closely resembles stylebot output {output_id}" in report.text
        # The frame's edge is left out with it: compared as a crop of nearly all of it.
        assert how in report.text, report.text


def shown_framed(image: Image.Image, factor: float) -> Image.Image:
    """Shown at ``factor``, captured with a 4 px grey frame (the screenshot of the
    geometry tests, at another zoom)."""
    shown = rescaled(image, factor)
    framed = Image.new("RGB", (shown.width + 8, shown.height + 8), (200, 200, 200))
    framed.paste(shown, (4, 4))
    return framed


async def test_a_screenshot_of_an_illustration_sent_through_telegram_resembles_it() -> None:
    """Hard colour edges, enlarged 1.36x inside a frame, then Telegram's JPEG: the copy's
    edges ring and the frame took a pixel of each side with it. Missed before the
    likeness allowed for values an edge already has nearby and compared the parts where
    the placement put them."""
    world = verify_world()
    output_id = await deliver(world, ALICE, illustration(3), mark=False)
    made = await stored_picture(world, output_id)

    report = await check(world, BOB, telegram_photo(shown_framed(made, 1.36)))
    assert report.verdict is VerifyVerdict.RESEMBLES, report.text
    assert report.output_id == output_id
    assert "inside a plain frame" in report.text


async def test_a_near_duplicate_sent_the_same_way_resembles_nothing() -> None:
    """The same path (enlarged, or shrunk, in a frame, Telegram) for pictures that are
    not the output: a small logo added, the output's own logo taken away, text written
    over it, a quarter of another picture pasted on it. The likeness's allowance for
    edges must not pass any of them."""
    world = verify_world()
    plain, other = illustration(3), illustration(4)
    for stored in (plain, small_logo(other, 0.04)):
        await deliver(world, ALICE, stored, mark=False)

    near_duplicates = {
        "a logo added": small_logo(plain, 0.03),
        "text written over it": text_over(plain, 12, (255, 255, 255)),
        "a quarter of another pasted on": paste(plain, scene(512, 512, seed=5), 0.25),
        "its logo taken away": other,
    }
    for what, picture in near_duplicates.items():
        for shown_at in (1.36, 0.77):
            report = await check(world, BOB, telegram_photo(shown_framed(picture, shown_at)))
            assert report.verdict is VerifyVerdict.NO_MARK, (what, shown_at, report.text)


async def test_a_caption_band_inside_a_frame_is_not_taken_for_the_frame() -> None:
    """A black band with red text across the top of the output, inside a black frame:
    the band is the frame's colour, but a screenshot's frame is even on all four sides,
    and this one would be 24 px at the top and 4 elsewhere. Taken for frame, it left
    a crop of the untouched output that "closely resembles" it (found by a hostile
    review)."""
    world = verify_world()
    output_id = await deliver(world, ALICE, illustration(3), mark=False)
    made = await stored_picture(world, output_id)
    captioned = banner(made, 0.04, "black", at_top=True)
    ImageDraw.Draw(captioned).text(
        (85, 1), "FAKE", fill=(255, 0, 0), font=ImageFont.load_default(size=18)
    )
    framed = Image.new("RGB", (made.width + 8, made.height + 8), "black")
    framed.paste(captioned, (4, 4))

    for copy in (framed, telegram_photo(framed)):
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_a_caption_in_a_plain_frame_is_not_taken_for_the_frame() -> None:
    """A meme: the untouched output in an even black frame whose bottom band carries a
    caption. The frame is not plain, and the output's maker is not named for the whole
    (found by a hostile review: "closely resembles ... inside a plain frame")."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=103), mark=False)
    made = await stored_picture(world, output_id)
    band = made.width // 8
    meme = Image.new("RGB", (made.width + 2 * band, made.height + 2 * band), "black")
    meme.paste(made, (band, band))
    ImageDraw.Draw(meme).text(
        (band + 4, meme.height - band + band // 4),
        "FAKE! made by bob",
        fill="white",
        font=ImageFont.load_default(size=band // 2),
    )
    for copy in (meme, telegram_photo(meme)):
        report = await check(world, BOB, copy)
        assert report.verdict is VerifyVerdict.NO_MARK, report.text


async def test_unrelated_pictures_resemble_no_stored_output() -> None:
    """Measured false matches: 24 stored outputs of three kinds, 45 unrelated pictures
    (noise, flat colours, gradients, other scenes and illustrations): none is claimed."""
    world = verify_world()
    stored = (
        [scene(512, 512, seed=300 + n) for n in range(12)]
        + [illustration(400 + n) for n in range(6)]
        + [subject_on_background("white" if n % 2 else "black", seed=500 + n) for n in range(6)]
    )
    for picture in stored:
        await deliver(world, ALICE, picture, mark=False)
    unrelated = [image for _, image in unmarked_images()]
    unrelated += [scene(512, 512, seed=600 + n) for n in range(8)]
    unrelated += [illustration(700 + n) for n in range(6)]

    claimed = []
    for picture in unrelated:
        report = await check(world, BOB, picture)
        if report.verdict is not VerifyVerdict.NO_MARK:
            claimed.append(report.text)
    assert claimed == []
    assert len(unrelated) == 45


def test_the_band_probes_find_every_hash_within_the_threshold() -> None:
    """Pigeonhole over 4 bands: a hash RESEMBLES_MAX_BITS bits away, the flips spread
    as evenly as possible over the bands, still shares a probed band value."""
    base = perceptual_hash(scene(256, 256, seed=12))
    assert base.informative
    probes = set(band_probes(base, RESEMBLES_MAX_BITS))
    for start in range(16):
        flipped = base.value
        for n in range(RESEMBLES_MAX_BITS):
            flipped ^= 1 << ((start + n * 16 + n) % 64)
        other = PerceptualHash(flipped, informative=True)
        assert hamming(base, other) == RESEMBLES_MAX_BITS
        assert probes & set(band_probes(other, 0)), start
