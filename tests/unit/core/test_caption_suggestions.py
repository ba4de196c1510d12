"""Auto-captioning in the core: `/captions auto` queues a caption job, its result is kept
as suggestions beside the waiting images, and only accepted ones are trained on and
covered by the consent."""

from __future__ import annotations

import dataclasses

import pytest
from tests.fakes.core import CoreWorld
from tests.unit.core.test_captions import ALICE, BOB, listed, upload_captioned

from stylebot.bot.core.commands import (
    AcceptCaptions,
    CancelJob,
    ConfirmConsent,
    SetCaption,
    SuggestCaptions,
    TrainStyle,
)
from stylebot.bot.core.replies import (
    CaptionList,
    ErrorReply,
    JobFinished,
    JobQueued,
)
from stylebot.queue.payloads import CaptionResult, JobEvent


@pytest.fixture
def captioning(world: CoreWorld) -> CoreWorld:
    world.bot.policy = dataclasses.replace(world.bot.policy, captioner_configured=True)
    return world


async def _proposed(world: CoreWorld, *texts: str) -> list[object]:
    """Ask for captions and have the worker's result come back with `texts`."""
    queued = await world.bot.handle(SuggestCaptions(ALICE))
    assert isinstance(queued, JobQueued), queued
    [job] = world.queue.caption_jobs
    result = CaptionResult(tuple(zip(job.image_keys, texts, strict=True)), 0.5, "tiny")
    event = JobEvent(job.job_id, "caption", "finished", step=2, total=2, result=result.to_dict())
    # Through JSON, as events cross the queue.
    return [n.reply for n in await world.bot.handle_event(JobEvent.from_json(event.to_json()))]


async def test_without_a_captioner_the_reply_says_so_and_nothing_is_queued(
    world: CoreWorld,
) -> None:
    await upload_captioned(world, None, None)

    reply = await world.bot.handle(SuggestCaptions(ALICE))

    assert isinstance(reply, ErrorReply)
    assert "not set up a captioner" in reply.text
    assert world.queue.caption_jobs == []


async def test_the_job_asks_for_each_waiting_image_once_in_the_members_turn(
    captioning: CoreWorld,
) -> None:
    await upload_captioned(captioning, None, "fog")

    queued = await captioning.bot.handle(SuggestCaptions(ALICE))
    again = await captioning.bot.handle(SuggestCaptions(ALICE))

    assert isinstance(queued, JobQueued)
    assert queued.kind == "caption"
    assert queued.position == 1
    [job] = captioning.queue.caption_jobs
    user = await captioning.uow.users.get_or_create_user("discord", "alice", "Alice")
    pending = await captioning.uow.uploads.pending_uploads(user.id)
    assert job.image_keys == tuple(u.blob_key for u in pending)
    assert job.owner is not None
    assert isinstance(again, ErrorReply)  # one caption job at a time
    assert isinstance(await captioning.bot.handle(SuggestCaptions(BOB)), ErrorReply)  # no images


async def test_proposals_are_listed_beside_the_captions_and_not_trained_on(
    captioning: CoreWorld,
) -> None:
    await upload_captioned(captioning, None, "fog")
    await captioning.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))

    shown, done = await _proposed(captioning, "a red\nsquare", "a blue square")

    assert isinstance(done, JobFinished)
    assert done.ok
    assert done.private
    assert isinstance(shown, CaptionList)
    assert "suggested: “a red square”" in shown.text
    assert [(c.caption, c.suggestion) for c in await listed(captioning)] == [
        ("", "a red square"),
        ("fog", "a blue square"),
    ]
    # Not accepted: the consent still holds and training uses the member's captions.
    assert isinstance(await captioning.bot.handle(TrainStyle(ALICE, "ink")), JobQueued)
    assert captioning.queue.train_jobs[0].captions == ("", "fog")


async def test_accepted_proposals_become_captions_that_the_consent_must_cover(
    captioning: CoreWorld,
) -> None:
    await upload_captioned(captioning, None, "fog", None)
    await captioning.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    await _proposed(captioning, "one", "two", "three")

    one = await captioning.bot.handle(AcceptCaptions(ALICE, 1))
    edited = await captioning.bot.handle(SetCaption(ALICE, 3, "my own"))

    assert isinstance(one, CaptionList)
    assert not isinstance(edited, ErrorReply)
    # Image 2's proposal is still only a proposal; image 3's was replaced by the edit.
    assert [(c.caption, c.suggestion) for c in await listed(captioning)] == [
        ("one", ""),
        ("fog", "two"),
        ("my own", ""),
    ]
    refused = await captioning.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(refused, ErrorReply)
    assert "captions changed" in refused.text
    await captioning.bot.handle(AcceptCaptions(ALICE))
    await captioning.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    assert isinstance(await captioning.bot.handle(TrainStyle(ALICE, "ink")), JobQueued)
    assert captioning.queue.train_jobs[0].captions == ("one", "two", "my own")


async def test_nothing_to_accept_and_wrong_numbers_change_nothing(
    captioning: CoreWorld,
) -> None:
    await upload_captioned(captioning, "one", None)

    assert isinstance(await captioning.bot.handle(AcceptCaptions(ALICE)), ErrorReply)
    await _proposed(captioning, "x", "y")
    assert isinstance(await captioning.bot.handle(AcceptCaptions(ALICE, 3)), ErrorReply)
    assert isinstance(await captioning.bot.handle(AcceptCaptions(BOB)), ErrorReply)
    assert [c.caption for c in await listed(captioning)] == ["one", ""]


async def test_a_cancelled_caption_job_leaves_no_proposals(captioning: CoreWorld) -> None:
    await upload_captioned(captioning, None)
    queued = await captioning.bot.handle(SuggestCaptions(ALICE))
    assert isinstance(queued, JobQueued)

    cancelled = await captioning.bot.handle(CancelJob(ALICE))
    late = CaptionResult(((captioning.queue.caption_jobs[0].image_keys[0], "late"),), 0.1)
    await captioning.bot.handle_event(
        JobEvent(queued.job_id, "caption", "finished", result=late.to_dict())
    )

    assert isinstance(cancelled, JobFinished)
    assert [c.suggestion for c in await listed(captioning)] == [""]
