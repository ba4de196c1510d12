"""The hostile corpus through the core (``StyleBot.handle`` on in-memory fakes).

Every case gets an ErrorReply that names the problem, nothing is stored, and the same bot
goes on serving a well-behaved user afterwards.
"""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, person, png
from tests.unit.core.test_images import BAD_UPLOADS
from tests.unit.safety.hostile_corpus import (
    HOSTILE_COMMANDS,
    HOSTILE_FILES,
    PNG,
    HostileCommand,
    HostileFile,
)

from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    TrainStyle,
    UploadImages,
    Verify,
)
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, JobQueued, TextReply

ALICE = person("alice")


def test_the_corpus_has_at_least_40_hostile_inputs_beyond_the_core_tests() -> None:
    ids = [case.id for case in HOSTILE_FILES] + [case.id for case in HOSTILE_COMMANDS]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {case[0] for case in BAD_UPLOADS}
    assert len(ids) >= 40


def assert_clear(reply: object, words: tuple[str, ...]) -> ErrorReply:
    assert isinstance(reply, ErrorReply), reply
    for word in words:
        assert word in reply.text
    # Safe to show: no control characters or bidi overrides from the input reach chat.
    assert all(ch.isprintable() or ch == "\n" for ch in reply.text), repr(reply.text)
    assert "\u202e" not in reply.text
    return reply


async def assert_nothing_stored(world: CoreWorld) -> None:
    assert world.blobs.keys() == set()
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await world.uow.uploads.pending_uploads(user.id) == []
    assert await world.uow.consents.latest_consent(user.id) is None
    assert await world.uow.styles.candidate_styles(user.id, None) == []
    assert world.queue.train_jobs == []
    assert world.queue.generate_jobs == []


@pytest.mark.parametrize("case", HOSTILE_FILES, ids=lambda c: c.id)
async def test_a_hostile_file_is_refused_clearly_and_stores_nothing(
    world: CoreWorld, case: HostileFile
) -> None:
    files = (IncomingFile("fine.png", png()), IncomingFile(case.filename, case.make()))
    reply = assert_clear(await world.bot.handle(UploadImages(ALICE, files)), case.words)
    assert "Nothing was saved" in reply.text
    await assert_nothing_stored(world)


@pytest.mark.parametrize("case", HOSTILE_COMMANDS, ids=lambda c: c.id)
async def test_a_hostile_command_is_refused_clearly_and_changes_nothing(
    world: CoreWorld, case: HostileCommand
) -> None:
    assert_clear(await world.bot.handle(case.make(ALICE)), case.words)
    await assert_nothing_stored(world)


async def test_verify_refuses_every_hostile_file_without_reading_it(world: CoreWorld) -> None:
    for case in HOSTILE_FILES:
        reply = await world.bot.handle(Verify(ALICE, IncomingFile(case.filename, case.make())))
        assert_clear(reply, ("I can't check that file",))
    await assert_nothing_stored(world)


async def test_the_bot_serves_normally_after_the_whole_corpus(world: CoreWorld) -> None:
    for case in HOSTILE_FILES:
        await world.bot.handle(UploadImages(ALICE, (IncomingFile(case.filename, case.make()),)))
    for command in HOSTILE_COMMANDS:
        await world.bot.handle(command.make(ALICE))
    await assert_nothing_stored(world)
    reply = await world.bot.handle(UploadImages(ALICE, (IncomingFile("ok.png", PNG),)))
    assert isinstance(reply, ConsentRequest)
    confirmed = await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    assert isinstance(confirmed, TextReply)
    assert isinstance(await world.bot.handle(TrainStyle(ALICE, "ink")), JobQueued)


async def test_a_png_zip_polyglot_is_a_valid_png_and_only_its_pixels_are_kept(
    world: CoreWorld,
) -> None:
    zip_tail = b"PK\x03\x04" + b"payload.js" + bytes(64) + b"PK\x05\x06" + bytes(18)
    reply = await world.bot.handle(UploadImages(ALICE, (IncomingFile("cat.png", PNG + zip_tail),)))
    assert isinstance(reply, ConsentRequest)
    (stored,) = world.blobs.blobs.values()
    assert b"PK\x03\x04" not in stored
    assert b"payload.js" not in stored
