"""Decoding and hashing a large picture must not stall other chats.

Normalising an upload, reading its watermark and hashing it are CPU work; the core runs
them in worker threads, so while one user's large photo is being checked another user's
command is answered.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld, safety_world

from stylebot.bot.core.commands import (
    Command,
    ConfirmConsent,
    IncomingFile,
    ListStyles,
    OptOut,
    UploadImages,
    Verify,
)
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.replies import ConsentRequest, TextReply

ALICE, BOB, CAROL = person("alice"), person("bob"), person("carol")


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    """A real photo-sized JPEG: decoding and re-encoding it takes a noticeable while."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def small_png() -> bytes:
    rng = np.random.default_rng(8)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


SLOW_COMMANDS: list[tuple[str, Callable[[bytes], Command]]] = [
    ("verify", lambda data: Verify(ALICE, IncomingFile("big.jpg", data))),
    ("upload", lambda data: UploadImages(ALICE, (IncomingFile("big.jpg", data),))),
    ("optout", lambda data: OptOut(ALICE, (IncomingFile("big.jpg", data),))),
]


@pytest.mark.parametrize(("name", "make"), SLOW_COMMANDS, ids=[n for n, _ in SLOW_COMMANDS])
async def test_another_users_command_is_answered_while_a_large_image_is_checked(
    large_jpeg: bytes, name: str, make: Callable[[bytes], Command]
) -> None:
    world: SafetyWorld = safety_world()
    # An opt-out on record, so an upload is perceptually hashed too.
    await world.bot.handle(OptOut(CAROL, (IncomingFile("mine.png", small_png()),)))
    assert len(world.optouts.images) == 1
    finished: list[str] = []

    async def run(label: str, command: Command) -> None:
        await world.bot.handle(command)
        finished.append(label)

    # The slow command is started first: without threads it would hold the event loop
    # until it is done, and /styles could only finish after it.
    await asyncio.gather(run(name, make(large_jpeg)), run("styles", ListStyles(BOB)))
    assert finished == ["styles", name]


async def test_another_users_command_is_answered_while_consent_hashes_the_images(
    large_jpeg: bytes,
) -> None:
    # Consent evidence hashes every waiting upload: a photo-sized one here.
    world: SafetyWorld = safety_world()
    upload = UploadImages(ALICE, (IncomingFile("a.jpg", large_jpeg),))
    assert isinstance(await world.bot.handle(upload), ConsentRequest)
    finished: list[str] = []

    async def run(label: str, command: Command) -> None:
        await world.bot.handle(command)
        finished.append(label)

    consent = ConfirmConsent(ALICE, "own-work", rights_confirmed=True)
    await asyncio.gather(run("consent", consent), run("styles", ListStyles(BOB)))
    assert finished == ["styles", "consent"]
    assert len(world.ledger.of_kind(LedgerKind.CONSENT)) == 1


async def test_styles_reply_is_a_real_reply() -> None:
    """The command raced above answers on its own (so the race measures something)."""
    reply = await safety_world().bot.handle(ListStyles(BOB))
    assert isinstance(reply, TextReply)
