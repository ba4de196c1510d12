"""Per-image captions in the core: kept with each upload, listed and changed before
training, covered by the consent, and sent with the training job in the images' order."""

from __future__ import annotations

from tests.fakes.core import CoreWorld, person, png
from tests.unit.core.test_service import trained_style

from stylebot.bot.core.captions import MAX_CAPTION_CHARS, captions_digest, fitted_caption
from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    SetCaption,
    ShowCaptions,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.replies import (
    CaptionList,
    ConsentRequest,
    ErrorReply,
    ImageCaption,
    JobQueued,
)

ALICE = person("alice")
BOB = person("bob")


async def upload_captioned(world: CoreWorld, *captions: str | None) -> None:
    files = tuple(
        IncomingFile(f"img{i}.png", png((10 * i, 20, 30)), caption)
        for i, caption in enumerate(captions)
    )
    reply = await world.bot.handle(UploadImages(ALICE, files))
    assert isinstance(reply, ConsentRequest), reply


async def listed(world: CoreWorld) -> tuple[ImageCaption, ...]:
    reply = await world.bot.handle(ShowCaptions(ALICE))
    assert isinstance(reply, CaptionList), reply
    assert reply.private  # the member's own words
    return reply.captions


async def test_each_upload_keeps_the_caption_it_came_with(world: CoreWorld) -> None:
    await upload_captioned(world, "  neon city,\n night ", None, "\x1bred\tfog")

    assert await listed(world) == (
        ImageCaption(1, "img0.png", "neon city, night"),
        ImageCaption(2, "img1.png", ""),
        ImageCaption(3, "img2.png", "red fog"),
    )


async def test_a_caption_is_changed_and_cleared_by_its_number(world: CoreWorld) -> None:
    await upload_captioned(world, "one", "two")

    changed = await world.bot.handle(SetCaption(ALICE, 2, "a lighthouse, dusk"))
    cleared = await world.bot.handle(SetCaption(ALICE, 1, "-"))

    assert not isinstance(changed, ErrorReply)
    assert not isinstance(cleared, ErrorReply)
    assert [c.caption for c in await listed(world)] == ["", "a lighthouse, dusk"]


async def test_a_wrong_number_or_a_too_long_caption_changes_nothing(world: CoreWorld) -> None:
    await upload_captioned(world, "one", "two")

    for command in (
        SetCaption(ALICE, 3, "x"),
        SetCaption(ALICE, 0, "x"),
        SetCaption(ALICE, 1, "x" * (MAX_CAPTION_CHARS + 1)),
    ):
        assert isinstance(await world.bot.handle(command), ErrorReply), command
    assert [c.caption for c in await listed(world)] == ["one", "two"]


async def test_nobody_changes_another_members_captions(world: CoreWorld) -> None:
    await upload_captioned(world, "one", "two")

    assert isinstance(await world.bot.handle(SetCaption(BOB, 1, "mine")), ErrorReply)
    assert isinstance(await world.bot.handle(ShowCaptions(BOB)), ErrorReply)
    assert [c.caption for c in await listed(world)] == ["one", "two"]


async def test_the_training_job_carries_each_images_caption_in_order(world: CoreWorld) -> None:
    await upload_captioned(world, "neon city", None, "fog")
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))

    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))

    assert isinstance(queued, JobQueued), queued
    [job] = world.queue.train_jobs
    assert job.captions == ("neon city", "", "fog")


async def test_a_caption_changed_after_consent_needs_a_new_confirmation(world: CoreWorld) -> None:
    await upload_captioned(world, "neon city", "fog")
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    await world.bot.handle(SetCaption(ALICE, 2, "something else"))

    refused = await world.bot.handle(TrainStyle(ALICE, "ink"))

    assert isinstance(refused, ErrorReply)
    assert "captions changed" in refused.text
    assert world.queue.train_jobs == []
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    assert isinstance(await world.bot.handle(TrainStyle(ALICE, "ink")), JobQueued)
    assert world.queue.train_jobs[0].captions == ("neon city", "something else")


async def test_a_consent_records_what_the_captions_were(world: CoreWorld) -> None:
    await upload_captioned(world, "neon city", None)
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))

    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    consent = await world.uow.consents.latest_consent(user.id)
    pending = await world.uow.uploads.pending_uploads(user.id)
    assert consent is not None
    assert consent.captions_sha256 == captions_digest(pending)
    assert consent.captions_sha256 is not None


async def test_a_style_shows_its_captions_to_its_owner_only(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")

    own = await world.bot.handle(ShowCaptions(ALICE, "ink"))
    others = await world.bot.handle(ShowCaptions(BOB, "ink"))

    assert isinstance(own, CaptionList)
    assert own.style == "ink"
    assert [c.number for c in own.captions] == [1, 2]
    assert isinstance(others, ErrorReply)


def test_uncaptioned_images_have_no_digest_as_consents_before_captions() -> None:
    assert captions_digest([]) is None


def test_a_long_message_text_is_cut_at_a_word() -> None:
    text = "word " * 100
    fitted = fitted_caption(text)
    assert fitted is not None
    assert len(fitted) <= MAX_CAPTION_CHARS
    assert fitted.endswith("word")
    assert fitted_caption(" \n ") is None
