"""/verify and what a file does not show at first sight: transparency whose look depends
on the background, a damaged stored copy, and many stored outputs sharing a fingerprint.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tests.fakes.core import person
from tests.fakes.memory import InMemoryBlobStore
from tests.support.damage import flip_byte
from tests.support.picture_edits import png_bytes, small_logo
from tests.support.verify_world import (
    VerifyWorld,
    check,
    deliver,
    stored_picture,
    verify_world,
)
from tests.unit.provenance.test_watermark import scene

from stylebot.bot.core.commands import IncomingFile, Verify
from stylebot.bot.core.replies import VerifyReport, VerifyVerdict
from stylebot.bot.core.resemblance import MAX_RESEMBLES_CANDIDATES
from stylebot.storage.blobs import LocalBlobStore

ALICE = person("alice")
BOB = person("bob")


def hostile_translucent(made: Image.Image) -> bytes:
    """A PNG equal to `made` over white, with "FAKE" showing over a dark background: in
    the word's pixels alpha is 0.6 and the colour is chosen so that over white the result
    is `made` again (the reviewer's alpha_wm.py)."""
    pixels = np.asarray(made.convert("RGB")).astype(float)
    mask = Image.new("L", made.size, 0)
    ImageDraw.Draw(mask).text((20, 150), "FAKE", fill=255, font=ImageFont.load_default(size=100))
    word = np.asarray(mask) > 0
    alpha = 0.6
    rgba = np.zeros((*pixels.shape[:2], 4), np.uint8)
    rgba[..., :3] = pixels
    rgba[..., 3] = 255
    colour = np.clip(np.round((pixels - (1 - alpha) * 255) / alpha), 0, 255)
    rgba[word, :3] = colour[word]
    rgba[word, 3] = round(alpha * 255)
    return png_bytes(Image.fromarray(rgba, "RGBA"))


def bright_scene(seed: int) -> Image.Image:
    """A scene with every value at least 128, so each pixel can be made again over white
    from a colour at alpha 0.6 (darker ones cannot)."""
    picture = scene(512, 512, seed=seed)
    return Image.blend(picture, Image.new("RGB", picture.size, "white"), 0.5)


async def verify_file(world: VerifyWorld, data: bytes) -> VerifyReport:
    """/verify of a file's exact bytes (check() re-encodes a picture, dropping alpha)."""
    report = await world.bot.handle(Verify(BOB, IncomingFile("check.png", data)))
    assert isinstance(report, VerifyReport), report
    return report


async def test_a_translucent_file_that_shows_other_content_on_a_dark_theme_is_not_made_by() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, bright_scene(61))
    made = await stored_picture(world, output_id)
    hostile = hostile_translucent(made)
    # Over white it is the output pixel for pixel (up to rounding): the old check's view.
    with Image.open(io.BytesIO(hostile)) as opened:
        over_white = Image.alpha_composite(
            Image.new("RGBA", opened.size, (255, 255, 255, 255)), opened.convert("RGBA")
        ).convert("RGB")
    assert np.abs(np.asarray(over_white, int) - np.asarray(made, int)).max() <= 1

    report = await verify_file(world, hostile)
    assert report.verdict is VerifyVerdict.ALTERED, report.text
    assert report.output is None
    assert "transparency" in report.text
    assert "dark" in report.text
    assert "Made with stylebot" not in report.text


async def test_a_fully_opaque_rgba_copy_is_still_made_by_its_maker() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=62))
    made = await stored_picture(world, output_id)
    report = await verify_file(world, png_bytes(made.convert("RGBA")))
    assert report.verdict is VerifyVerdict.MADE, report.text


async def test_a_damaged_stored_copy_gives_mark_only_not_an_error(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    world = verify_world(blobs=blobs)
    output_id = await deliver(world, ALICE, scene(512, 512, seed=63))
    made = await stored_picture(world, output_id)
    record = await world.bot.deps.uow.outputs.get_output(output_id)
    assert record is not None
    assert record.blob_key is not None
    flip_byte(blobs.path(record.blob_key))

    report = await check(world, BOB, made)
    assert report.verdict is VerifyVerdict.MARK_ONLY, report.text
    assert report.output_id == output_id
    assert "does not prove who made it" in report.text


class CountingBlobStore(InMemoryBlobStore):
    """The in-memory store, remembering every key read (to bound /verify's reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    async def get(self, key: str) -> bytes:
        self.read.append(key)
        return await super().get(key)


async def test_an_unmarked_picture_is_compared_with_at_most_a_few_stored_outputs() -> None:
    blobs = CountingBlobStore()
    world = verify_world(blobs=blobs)
    base = scene(512, 512, seed=64)
    # Many outputs with one fingerprint, none equal to the picture sent (each has a dot).
    for n in range(MAX_RESEMBLES_CANDIDATES + 6):
        await deliver(world, ALICE, small_logo(base.rotate(0), 0.01 + n * 0.001), mark=False)
    # And the same image delivered several times: one stored blob, read once.
    for _ in range(4):
        await deliver(world, ALICE, small_logo(base, 0.03), mark=False)
    blobs.read.clear()

    report = await check(world, BOB, base)
    assert report.verdict is VerifyVerdict.NO_MARK, report.text
    assert 1 <= len(blobs.read) <= MAX_RESEMBLES_CANDIDATES
    assert len(set(blobs.read)) == len(blobs.read), "a blob shared by outputs is read once"


async def test_an_altered_translucent_copy_is_as_altered_as_it_looks_over_black() -> None:
    """A small logo on the output, and "FAKE" that shows only over a dark background: the
    altered copy was compared over white only (a hostile review), so the report counted
    the logo and said "the rest is certainly its maker's work"."""
    world = verify_world()
    output_id = await deliver(world, ALICE, bright_scene(seed=6))
    logo = small_logo(await stored_picture(world, output_id), 0.06)

    plain = await verify_file(world, png_bytes(logo))
    hostile = await verify_file(world, hostile_translucent(logo))
    assert plain.verdict is VerifyVerdict.ALTERED, plain.text
    assert hostile.output_id == output_id, hostile.text
    assert plain.differs_percent is not None
    assert hostile.differs_percent is not None
    assert hostile.differs_percent > plain.differs_percent + 5, (plain.text, hostile.text)
