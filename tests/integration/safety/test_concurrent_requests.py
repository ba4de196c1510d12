"""Requests sent at the same moment, on the real SQLite repository: limits hold, a
/cancel that loses to the worker's result leaves the result standing, a style being
deleted takes no new jobs, and a blob two people share is not deleted under one of them.

Both chat adapters handle commands concurrently, and every check reads what other
requests write several awaits later; requests gathered here interleave at those awaits
as they do in the bot. The queue's cancel waits a little, as the real one waits for Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.fakes.core import PixelWatermark, RecordingQueue, SteppingClock, bot_on, person, png
from tests.fakes.memory import InMemoryBlobStore

from stylebot.bot.core.commands import (
    CancelJob,
    ConfirmConsent,
    DeleteStyle,
    DiscardUploads,
    Imagine,
    IncomingFile,
    ShareStyle,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, JobQueued, Reply, TextReply
from stylebot.bot.core.service import StyleBot
from stylebot.queue.payloads import JobEvent, TrainResult, TrainSettings
from stylebot.storage.unit_of_work import SqliteUnitOfWork

LIMITS = Policy(
    base_model="tiny",
    train=TrainSettings(steps=10),
    images_per_user_per_day=4,
    images_per_server_per_day=6,
    requests_per_window=100,
    max_queued_per_user=10,
)


class SlowDisk(InMemoryBlobStore):
    """Storing a blob takes a moment after the bytes are there, as syncing does."""

    put_delay_s = 0.0

    async def put(self, data: bytes) -> str:
        key = await super().put(data)
        await asyncio.sleep(self.put_delay_s)
        return key


class RoundTripQueue(RecordingQueue):
    """Cancelling takes a round trip, during which other requests and events go on."""

    async def cancel(self, job_id: str) -> None:
        await asyncio.sleep(0.01)
        await super().cancel(job_id)


@pytest.fixture
async def bot_and_queue(tmp_path: Path) -> AsyncIterator[tuple[StyleBot, RecordingQueue]]:
    repo = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    queue = RoundTripQueue()
    bot = bot_on(
        repo,
        SlowDisk(),
        queue,
        PixelWatermark(),
        SteppingClock(),
        LIMITS,
    )
    try:
        yield bot, queue
    finally:
        await repo.close()


async def test_one_users_requests_sent_at_once_stay_within_their_quota(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, queue = bot_and_queue
    alice = person("alice")
    replies = await asyncio.gather(
        *(bot.handle(Imagine(alice, "a boat", count=2)) for _ in range(10))
    )
    assert sum(isinstance(r, JobQueued) for r in replies) == 2
    assert sum(len(job.output_ids) for job in queue.generate_jobs) == 4
    refusals = {r.text for r in replies if isinstance(r, ErrorReply)}
    assert len(refusals) == 1
    assert "4" in refusals.pop()  # names the daily limit


async def test_a_servers_members_sent_at_once_stay_within_its_quota(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, queue = bot_and_queue
    members = [person(f"member{i}") for i in range(8)]
    replies = await asyncio.gather(*(bot.handle(Imagine(m, "a boat", count=2)) for m in members))
    assert sum(isinstance(r, JobQueued) for r in replies) == 3
    assert sum(len(job.output_ids) for job in queue.generate_jobs) == 6


async def test_two_trainings_of_one_image_set_sent_at_once_make_one_style(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, queue = bot_and_queue
    alice = person("alice")
    await uploaded_and_consented(bot, alice, 3)
    replies = await asyncio.gather(
        bot.handle(TrainStyle(alice, "ink")), bot.handle(TrainStyle(alice, "wash"))
    )
    assert sum(isinstance(r, JobQueued) for r in replies) == 1
    assert len(queue.train_jobs) == 1
    (refused,) = [r for r in replies if isinstance(r, ErrorReply)]
    assert refused.text.startswith("Upload at least")  # the first took the waiting images


async def uploaded_and_consented(bot: StyleBot, who: Requester, images: int) -> None:
    files = tuple(IncomingFile(f"{i}.png", png((40 * i, 90, 200))) for i in range(1, images + 1))
    await bot.handle(UploadImages(who, files))
    await bot.handle(ConfirmConsent(who, "own-work", rights_confirmed=True))


async def queued_training(bot: StyleBot, who: Requester, name: str) -> str:
    """Two images uploaded and consented to, and a training of them queued: its job id."""
    await uploaded_and_consented(bot, who, 2)
    queued = await bot.handle(TrainStyle(who, name))
    assert isinstance(queued, JobQueued)
    return queued.job_id


async def trained_style(bot: StyleBot, who: Requester, name: str) -> str:
    """A style trained and ready; returns its training job's id."""
    job_id = await queued_training(bot, who, name)
    await bot.handle_event(training_finished(job_id))
    return job_id


def training_finished(job_id: str) -> JobEvent:
    result = TrainResult(lora_key="0" * 64, steps=10, final_loss=0.1, seconds=1.0)
    return JobEvent(job_id, "train", "finished", result=result.to_dict())


async def test_a_cancel_that_loses_to_the_finished_training_leaves_the_style_ready(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, _ = bot_and_queue
    alice = person("alice")
    job_id = await queued_training(bot, alice, "ink")

    cancelled, told = await asyncio.gather(
        bot.handle(CancelJob(alice, None)), bot.handle_event(training_finished(job_id))
    )

    assert isinstance(cancelled, ErrorReply)
    assert "already finished" in cancelled.text
    assert ["is ready" in n.reply.text for n in told] == [True]
    job = await bot.deps.uow.jobs.get_job(job_id)
    assert job is not None
    assert job.status is JobStatus.FINISHED
    made = await bot.handle(Imagine(alice, "a boat", style="ink"))
    assert isinstance(made, JobQueued)


async def test_a_style_being_deleted_takes_no_new_job(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, queue = bot_and_queue
    alice, bob = person("alice"), person("bob")
    await trained_style(bot, alice, "ink")
    await bot.handle(ShareStyle(alice, "ink", public=True))
    first = await bot.handle(Imagine(alice, "one", style="ink"))  # its cancel takes a while
    assert isinstance(first, JobQueued)

    async def bob_asks_meanwhile() -> Reply:
        await asyncio.sleep(0.002)  # while the delete waits for its first cancel
        return await bot.handle(Imagine(bob, "a boat", style="ink"))

    deleted, asked = await asyncio.gather(
        bot.handle(DeleteStyle(alice, "ink")), bob_asks_meanwhile()
    )

    assert isinstance(deleted, TextReply)
    assert deleted.text.startswith("Deleted style ink")
    # Bob's request either came first and was cancelled with the style, or found none.
    active = await bot.deps.uow.jobs.active_jobs()
    assert active == []
    if isinstance(asked, JobQueued):
        assert asked.job_id in queue.cancelled
    else:
        assert isinstance(asked, ErrorReply)
        assert "no style named ink" in asked.text
    assert first.job_id in queue.cancelled


async def test_discarding_an_image_while_someone_uploads_the_same_bytes_keeps_it(
    bot_and_queue: tuple[StyleBot, RecordingQueue],
) -> None:
    bot, _ = bot_and_queue
    alice, bob = person("alice"), person("bob")
    same = IncomingFile("sea.png", png((20, 120, 220)))
    await bot.handle(UploadImages(alice, (same,)))
    blobs = bot.deps.blobs
    assert isinstance(blobs, SlowDisk)
    blobs.put_delay_s = 0.05  # Bob's upload is storing the (already stored) blob...

    async def alice_discards_meanwhile() -> Reply:
        await asyncio.sleep(0.01)  # ...when Alice discards her copy
        return await bot.handle(DiscardUploads(alice))

    uploaded, discarded = await asyncio.gather(
        bot.handle(UploadImages(bob, (same,))), alice_discards_meanwhile()
    )

    assert isinstance(discarded, TextReply)
    assert discarded.text == "Discarded 1 waiting image(s)."
    assert not isinstance(uploaded, ErrorReply), uploaded
    bob_user = await bot.deps.uow.users.get_or_create_user("discord", "bob", "Bob")
    (waiting,) = await bot.deps.uow.uploads.pending_uploads(bob_user.id)
    assert await blobs.exists(waiting.blob_key)  # Bob's image is still there to train on
