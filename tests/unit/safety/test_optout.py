"""/optout: registered images and their close copies are refused to everyone else."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
from PIL import Image, ImageEnhance
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld, safety_world

from stylebot.bot.core.commands import EraseMyData, IncomingFile, OptOut, UploadImages
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, TextReply
from stylebot.queue.payloads import TrainSettings

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
        assert mention(CommandName.OPTOUT) in refused.text
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


def capped(**caps: int) -> SafetyWorld:
    policy = Policy(base_model="tiny", train=TrainSettings(steps=10, resolution=64), **caps)
    return safety_world(policy)


async def test_registrations_per_day_are_capped() -> None:
    safe = capped(optouts_per_user_per_day=3, optouts_per_user=0)
    assert isinstance(
        await opt_out(safe, ARTIST, *(encoded(painting(s)) for s in (1, 2))), TextReply
    )
    refused = await opt_out(safe, ARTIST, *(encoded(painting(s)) for s in (3, 4)))
    assert isinstance(refused, ErrorReply)
    assert "at most 3 a day" in refused.text
    assert "Nothing was registered" in refused.text
    assert len(safe.optouts.images) == 2
    safe.clock.current += timedelta(days=1)
    again = await opt_out(safe, ARTIST, *(encoded(painting(s)) for s in (3, 4)))
    assert isinstance(again, TextReply)
    assert len(safe.optouts.images) == 4


async def test_the_cap_in_all_holds_across_erasure() -> None:
    # Erasing unlinks the registrations from the person; it must not make room for more.
    safe = capped(optouts_per_user=2, optouts_per_user_per_day=0)
    await opt_out(safe, ARTIST, encoded(painting(1)), encoded(painting(2)))
    await safe.bot.handle(EraseMyData(ARTIST, confirmed=True))
    assert {i.platform_user_id for i in safe.optouts.images} != {ARTIST.user_id}
    refused = await opt_out(safe, ARTIST, encoded(painting(3)))
    assert isinstance(refused, ErrorReply)
    assert "at most 2 in all" in refused.text
    other = await opt_out(safe, COPIER, encoded(painting(3)))
    assert isinstance(other, TextReply)


async def test_a_registration_records_where_and_by_whom(safe: SafetyWorld) -> None:
    await opt_out(safe, ARTIST, encoded(painting(1)))
    await opt_out(safe, ELSEWHERE, encoded(painting(2)))
    registered, elsewhere = safe.optouts.images
    assert registered.scope == "discord:guild-1"
    assert elsewhere.scope is None  # a direct message
    assert len(registered.registrant) == len(elsewhere.registrant) == 32
    assert registered.registrant != elsewhere.registrant
    assert ARTIST.user_id not in registered.registrant  # a one-way code, not the id
