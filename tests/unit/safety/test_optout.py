"""/optout: registered images and their close copies are refused to everyone else."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld

from stylebot.bot.core import ConsentRequest, ErrorReply, IncomingFile, TextReply, UploadImages
from stylebot.bot.core.commands import OptOut

ARTIST = person("artist", server="guild-1")
COPIER = person("copier", server="guild-1")
ELSEWHERE = person("artist", server=None, platform="telegram")


def painting(seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize((size, size), Image.Resampling.BICUBIC)


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


async def opt_out(safe: SafetyWorld, who: object, *images: bytes) -> object:
    files = tuple(IncomingFile(f"mine{i}.png", data) for i, data in enumerate(images))
    return await safe.bot.handle(OptOut(who, files))  # type: ignore[arg-type]


async def test_copies_of_an_opted_out_image_are_refused_to_others(safe: SafetyWorld) -> None:
    original = painting(1)
    reply = await opt_out(safe, ARTIST, encoded(original))
    assert isinstance(reply, TextReply)
    assert "Registered 1 image" in reply.text
    assert safe.blobs.keys() == set()  # fingerprints only: the artist's image is not stored
    copies = {
        "same.png": encoded(original),
        "recompressed.jpg": encoded(original, "JPEG", quality=60),
        "smaller.png": encoded(original.resize((180, 180))),
        "brighter.png": encoded(ImageEnhance.Brightness(original).enhance(1.1)),
        "cropped.png": encoded(original.crop((6, 6, 250, 250))),
    }
    for name, data in copies.items():
        refused = await safe.bot.handle(UploadImages(COPIER, (IncomingFile(name, data),)))
        assert isinstance(refused, ErrorReply), name
        assert "/optout" in refused.text
        assert "Nothing was saved" in refused.text
    assert safe.blobs.keys() == set()


async def test_unrelated_images_and_the_artist_themself_are_not_refused(
    safe: SafetyWorld,
) -> None:
    await opt_out(safe, ARTIST, encoded(painting(1)), encoded(painting(2)))
    for seed in range(3, 13):
        data = encoded(painting(seed))
        reply = await safe.bot.handle(UploadImages(COPIER, (IncomingFile("x.png", data),)))
        assert isinstance(reply, ConsentRequest), seed
    own = await safe.bot.handle(
        UploadImages(ARTIST, (IncomingFile("o.png", encoded(painting(1))),))
    )
    assert isinstance(own, ConsentRequest)


async def test_the_same_person_on_another_platform_is_someone_else(safe: SafetyWorld) -> None:
    # Platform user ids are only unique per platform: no cross-platform identity is assumed.
    await opt_out(safe, ARTIST, encoded(painting(1)))
    reply = await safe.bot.handle(
        UploadImages(ELSEWHERE, (IncomingFile("a.png", encoded(painting(1))),))
    )
    assert isinstance(reply, ErrorReply)


async def test_registering_twice_and_bad_files(safe: SafetyWorld) -> None:
    data = encoded(painting(1))
    await opt_out(safe, ARTIST, data)
    again = await opt_out(safe, ARTIST, data, encoded(painting(2)))
    assert isinstance(again, TextReply)
    assert "1 you had registered before" in again.text
    assert len(safe.optouts.images) == 2
    bad = await opt_out(safe, ARTIST, encoded(painting(3)), b"not an image")
    assert isinstance(bad, ErrorReply)
    assert "Nothing was registered" in bad.text
    assert len(safe.optouts.images) == 2
    flat = await opt_out(safe, ARTIST, encoded(Image.new("RGB", (128, 128), "red")))
    assert isinstance(flat, ErrorReply)
    assert "flat colour" in flat.text
    empty = await safe.bot.handle(OptOut(ARTIST, ()))
    assert isinstance(empty, ErrorReply)
