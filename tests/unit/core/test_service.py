"""The bot core's rules, on in-memory fakes of its ports."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from tests.fakes.core import CoreWorld, person, png
from tests.unit.core.test_images import BAD_UPLOADS

from stylebot.bot.core.commands import (
    ConfirmConsent,
    DiscardUploads,
    Imagine,
    IncomingFile,
    ListStyles,
    ShowStatus,
    TrainStyle,
    UploadImages,
    Verify,
)
from stylebot.bot.core.model import JobStatus, Requester, StyleStatus
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErrorReply,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    TextReply,
    VerifyReport,
    VerifyVerdict,
)
from stylebot.queue.payloads import GeneratedImage, GenerateResult, JobEvent, TrainResult

ALICE = person("alice")
BOB = person("bob")


async def upload(world: CoreWorld, who: Requester, *colours: tuple[int, int, int]) -> object:
    files = tuple(IncomingFile(f"img{i}.png", png(c)) for i, c in enumerate(colours))
    return await world.bot.handle(UploadImages(who, files))


async def trained_style(world: CoreWorld, who: Requester = ALICE, name: str = "ink") -> str:
    """Upload, consent, train and finish a style; returns the training job id."""
    await upload(world, who, (10, 20, 30), (40, 50, 60))
    await world.bot.handle(ConfirmConsent(who, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(who, name))
    assert isinstance(queued, JobQueued)
    result = TrainResult(
        lora_key=await world.blobs.put(b"lora-weights"), steps=10, final_loss=0.1, seconds=1.0
    )
    await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    )
    return queued.job_id


async def test_upload_asks_for_consent_and_keeps_images_pending(world: CoreWorld) -> None:
    reply = await upload(world, ALICE, (1, 2, 3), (4, 5, 6))
    assert isinstance(reply, ConsentRequest)
    assert reply.image_count == 2
    assert {lic.id for lic in reply.licences} >= {"own-work", "CC0-1.0", "CC-BY-4.0"}
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    pending = await world.uow.uploads.pending_uploads(user.id)
    assert len(pending) == 2
    for item in pending:
        assert await world.blobs.exists(item.blob_key)


async def test_the_same_image_twice_is_kept_once(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    reply = await upload(world, ALICE, (1, 2, 3))
    assert isinstance(reply, ConsentRequest)
    assert reply.image_count == 1
    assert "already received" in reply.text


async def test_one_bad_file_refuses_the_whole_upload_and_stores_nothing(world: CoreWorld) -> None:
    files = (IncomingFile("good.png", png()), IncomingFile("notes.png", b"not an image"))
    reply = await world.bot.handle(UploadImages(ALICE, files))
    assert isinstance(reply, ErrorReply)
    assert "notes.png" in reply.text
    assert world.blobs.blobs == {}
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await world.uow.uploads.pending_uploads(user.id) == []


async def test_upload_over_the_image_limit_is_refused(world: CoreWorld) -> None:
    world.bot.policy = dataclasses.replace(world.bot.policy, max_train_images=2)
    reply = await upload(world, ALICE, (1, 1, 1), (2, 2, 2), (3, 3, 3))
    assert isinstance(reply, ErrorReply)
    assert "at most 2" in reply.text
    assert world.blobs.blobs == {}


async def test_training_is_refused_until_consent(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    reply = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(reply, ErrorReply)
    assert "confirm" in reply.text.lower()
    assert world.queue.train_jobs == []


async def test_consent_needs_a_known_licence_and_confirmed_rights(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    unknown = await world.bot.handle(ConfirmConsent(ALICE, "whatever", rights_confirmed=True))
    unconfirmed = await world.bot.handle(ConfirmConsent(ALICE, "CC0", rights_confirmed=False))
    assert isinstance(unknown, ErrorReply)
    assert "own-work" in unknown.text
    assert isinstance(unconfirmed, ErrorReply)
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await world.uow.consents.latest_consent(user.id) is None


async def test_consent_records_the_hashes_licence_and_time(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3), (9, 9, 9))
    reply = await world.bot.handle(ConfirmConsent(ALICE, "cc by 4.0", rights_confirmed=True))
    assert isinstance(reply, TextReply)
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    consent = await world.uow.consents.latest_consent(user.id)
    assert consent is not None
    pending = await world.uow.uploads.pending_uploads(user.id)
    assert set(consent.image_hashes) == {u.blob_key for u in pending}
    assert consent.licence == "CC-BY-4.0"
    assert consent.rights_confirmed
    assert consent.created_at.tzinfo is not None


async def test_train_queues_a_job_with_the_images_and_trigger(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3), (4, 5, 6))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    reply = await world.bot.handle(TrainStyle(ALICE, "Ink-Wash"))
    assert isinstance(reply, JobQueued)
    assert reply.position == 1
    [job] = world.queue.train_jobs
    assert job.job_id == reply.job_id
    assert len(job.image_keys) == 2
    assert "ink wash" in job.trigger
    assert job.settings.steps == 10
    style = await world.uow.styles.get_style(job.style_id)
    assert style is not None
    assert style.name == "ink-wash"
    assert style.status is StyleStatus.TRAINING
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await world.uow.uploads.pending_uploads(user.id) == []


async def test_images_added_after_consent_need_a_new_consent(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    await upload(world, ALICE, (7, 7, 7))
    reply = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(reply, ErrorReply)
    assert "changed" in reply.text
    assert world.queue.train_jobs == []


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "a",
        "has space",
        "x" * 33,
        "emoji🙂",
        "1starts-with-digit",
        "",
        "a/b",
        "nul\x00",
    ],
)
async def test_hostile_or_invalid_style_names_are_refused(world: CoreWorld, name: str) -> None:
    await upload(world, ALICE, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    reply = await world.bot.handle(TrainStyle(ALICE, name))
    assert isinstance(reply, ErrorReply)
    assert "letters" in reply.text
    assert world.queue.train_jobs == []


async def test_a_second_style_with_the_same_name_is_refused(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await upload(world, ALICE, (90, 90, 90))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    reply = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(reply, ErrorReply)
    assert "already have" in reply.text
    assert len(world.queue.train_jobs) == 1


async def test_progress_and_completion_reach_where_the_job_came_from(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)

    [progress] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "progress", step=3, total=10, loss=0.25)
    )
    assert progress.to == ALICE
    assert isinstance(progress.reply, JobProgress)
    assert "3/10" in progress.reply.text
    job = await world.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert (job.status, job.step, job.total) == (JobStatus.RUNNING, 3, 10)

    lora = await world.blobs.put(b"weights")
    result = TrainResult(lora_key=lora, steps=10, final_loss=0.05, seconds=2.0)
    [done] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    )
    assert isinstance(done.reply, JobFinished)
    assert done.reply.ok
    style = await world.uow.styles.find_style(
        (await world.uow.users.get_or_create_user("discord", "alice", "Alice")).id, "ink"
    )
    assert style is not None
    assert style.status is StyleStatus.READY
    assert style.lora_key == lora


async def test_a_failed_training_marks_the_style_failed(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    [note] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "failed", error="out of memory")
    )
    assert isinstance(note.reply, JobFinished)
    assert not note.reply.ok
    assert "out of memory" in note.reply.text
    job = await world.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    imagine = await world.bot.handle(Imagine(ALICE, "a cat", style="ink"))
    assert isinstance(imagine, ErrorReply)
    assert "failed" in imagine.text


async def test_imagine_sends_the_style_weights_and_one_output_id_per_image(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    reply = await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", seed=5, count=2))
    assert isinstance(reply, JobQueued)
    [job] = world.queue.generate_jobs
    assert job.lora_key is not None
    assert job.trigger is not None
    assert "ink" in job.trigger
    assert job.seed == 5
    assert len(job.output_ids) == 2 == len(set(job.output_ids))
    outputs = await world.uow.outputs.job_outputs(job.job_id)
    assert sorted(o.seed for o in outputs) == [5, 6]
    assert all(o.blob_key is None for o in outputs)


async def test_generated_images_are_recorded_and_delivered(world: CoreWorld) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", seed=5))
    [job] = world.queue.generate_jobs
    key = await world.blobs.put(b"png bytes")
    result = GenerateResult((GeneratedImage(job.output_ids[0], key, 5),), 1.0)
    event = JobEvent(job.job_id, "generate", "finished", result=result.to_dict())

    [note] = await world.bot.handle_event(event)
    assert note.to == ALICE
    assert isinstance(note.reply, ImagesReady)
    assert [i.data for i in note.reply.images] == [b"png bytes"]
    output = await world.uow.outputs.get_output(job.output_ids[0])
    assert output is not None
    assert output.blob_key == key

    # Delivered again after a front-end restart: told again, recorded once.
    [again] = await world.bot.handle_event(event)
    assert isinstance(again.reply, ImagesReady)
    late_progress = JobEvent(job.job_id, "generate", "progress", step=1, total=2)
    assert await world.bot.handle_event(late_progress) == []


async def test_outputs_a_worker_was_not_given_are_ignored(world: CoreWorld) -> None:
    await world.bot.handle(Imagine(ALICE, "a lighthouse", seed=1))
    [job] = world.queue.generate_jobs
    key = await world.blobs.put(b"png")
    result = GenerateResult((GeneratedImage("ffffffffffff", key, 1),), 1.0)
    [note] = await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    assert isinstance(note.reply, ImagesReady)
    assert note.reply.images == ()
    assert await world.uow.outputs.get_output("ffffffffffff") is None


async def test_someone_elses_private_style_is_not_found(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    reply = await world.bot.handle(Imagine(BOB, "a cat", style="ink"))
    assert isinstance(reply, ErrorReply)
    # The same words as for a style that does not exist: no leak that it does.
    missing = await world.bot.handle(Imagine(BOB, "a cat", style="nothere"))
    assert isinstance(missing, ErrorReply)
    assert reply.text.replace("ink", "X") == missing.text.replace("nothere", "X")
    assert world.queue.generate_jobs == []
    styles = await world.bot.handle(ListStyles(BOB))
    assert isinstance(styles, TextReply)
    assert "ink" not in styles.text


async def test_a_style_still_training_cannot_be_used(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    await world.bot.handle(TrainStyle(ALICE, "ink"))
    reply = await world.bot.handle(Imagine(ALICE, "a cat", style="ink"))
    assert isinstance(reply, ErrorReply)
    assert "still training" in reply.text


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Imagine(ALICE, "   "), "Describe"),
        (Imagine(ALICE, "x" * 1001), "1000 characters"),
        (Imagine(ALICE, "a cat", steps=0), "steps"),
        (Imagine(ALICE, "a cat", steps=500), "steps"),
        (Imagine(ALICE, "a cat", width=500), "multiple of 8"),
        (Imagine(ALICE, "a cat", height=4096), "between"),
        (Imagine(ALICE, "a cat", count=9), "count"),
        (Imagine(ALICE, "a cat", seed=-1), "seed"),
    ],
)
async def test_imagine_options_out_of_range_are_refused(
    world: CoreWorld, command: Imagine, expected: str
) -> None:
    reply = await world.bot.handle(command)
    assert isinstance(reply, ErrorReply)
    assert expected in reply.text
    assert world.queue.generate_jobs == []


async def test_status_lists_the_users_jobs_with_positions(world: CoreWorld) -> None:
    await world.bot.handle(Imagine(BOB, "first"))
    await world.bot.handle(Imagine(ALICE, "second"))
    reply = await world.bot.handle(ShowStatus(ALICE))
    assert isinstance(reply, TextReply)
    assert "position 2" in reply.text
    assert "generate" in reply.text
    idle = await world.bot.handle(ShowStatus(person("carol")))
    assert isinstance(idle, TextReply)
    assert "no jobs" in idle.text


async def test_discard_forgets_waiting_images_and_their_blobs(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    reply = await world.bot.handle(DiscardUploads(ALICE))
    assert isinstance(reply, TextReply)
    assert "1" in reply.text
    assert world.blobs.blobs == {}


async def test_verify_traces_a_watermarked_image_to_its_record(world: CoreWorld) -> None:
    await trained_style(world)
    await world.bot.handle(Imagine(ALICE, "a lighthouse", style="ink", seed=3))
    [job] = world.queue.generate_jobs
    world.watermark.ids[(1, 2, 3)] = job.output_ids[0]
    result = GenerateResult(
        (GeneratedImage(job.output_ids[0], await world.blobs.put(png((1, 2, 3))), 3),), 1.0
    )
    await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )

    mine = await world.bot.handle(Verify(ALICE, IncomingFile("x.png", png((1, 2, 3)))))
    assert isinstance(mine, VerifyReport)
    assert mine.verdict is VerifyVerdict.MADE
    assert mine.output is not None
    assert "<@alice>, named 'Alice' when it was made" in mine.text
    assert "ink" in mine.text
    assert "a lighthouse" in mine.text
    assert mine.private, "her private prompt is for her eyes only, never a group's"
    # Made with her private style: Bob learns who made it and when, not how.
    theirs = await world.bot.handle(Verify(BOB, IncomingFile("x.png", png((1, 2, 3)))))
    assert isinstance(theirs, VerifyReport)
    assert theirs.verdict is VerifyVerdict.MADE
    assert theirs.output is None
    assert "<@alice>" in theirs.text
    assert "ink" not in theirs.text
    assert "a lighthouse" not in theirs.text
    assert not theirs.private, "nothing in it is private: a group may read it"

    plain = await world.bot.handle(Verify(BOB, IncomingFile("y.png", png((9, 9, 9)))))
    assert isinstance(plain, VerifyReport)
    assert plain.output_id is None
    assert not plain.private

    junk = await world.bot.handle(Verify(BOB, IncomingFile("z.png", b"\x89PNG broken")))
    assert isinstance(junk, ErrorReply)


async def test_a_mark_of_an_output_whose_image_is_not_stored_proves_nothing(
    world: CoreWorld,
) -> None:
    await world.bot.handle(Imagine(ALICE, "a lighthouse", seed=3))
    [job] = world.queue.generate_jobs
    world.watermark.ids[(1, 2, 3)] = job.output_ids[0]  # never delivered: no image to compare
    report = await world.bot.handle(Verify(BOB, IncomingFile("x.png", png((1, 2, 3)))))
    assert isinstance(report, VerifyReport)
    assert report.verdict is VerifyVerdict.MARK_ONLY
    assert report.output is None
    assert "does not prove who made it" in report.text
    assert "Made with stylebot" not in report.text


async def test_discard_keeps_an_image_someone_else_also_uploaded(world: CoreWorld) -> None:
    await upload(world, ALICE, (5, 5, 5))
    await upload(world, BOB, (5, 5, 5))
    await world.bot.handle(DiscardUploads(ALICE))
    bob = await world.uow.users.get_or_create_user("discord", "bob", "Bob")
    [still_pending] = await world.uow.uploads.pending_uploads(bob.id)
    assert await world.blobs.exists(still_pending.blob_key)


@pytest.mark.parametrize(
    ("filename", "make", "code", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_UPLOADS],
)
async def test_every_kind_of_bad_upload_gets_a_clear_reply_and_stores_nothing(
    world: CoreWorld, filename: str, make: Callable[[], bytes], code: str, words: tuple[str, ...]
) -> None:
    good = IncomingFile("fine.png", png())
    reply = await world.bot.handle(UploadImages(ALICE, (good, IncomingFile(filename, make()))))
    assert isinstance(reply, ErrorReply)
    assert "Nothing was saved" in reply.text
    for word in words:
        assert word in reply.text
    assert world.blobs.blobs == {}
    alice = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    assert await world.uow.uploads.pending_uploads(alice.id) == []


async def test_jobs_carry_their_owner_so_workers_can_take_turns(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await world.bot.handle(Imagine(ALICE, "a cat", style="ink"))
    await world.bot.handle(Imagine(BOB, "a dog"))
    [train] = world.queue.train_jobs
    alices, bobs = world.queue.generate_jobs
    assert train.owner is not None
    assert alices.owner == train.owner
    assert bobs.owner is not None
    assert bobs.owner != alices.owner
