"""/forgetme through the real queue: a style training on a worker is stopped at its next
step, its checkpoints and images are gone, and the worker is free for the next user."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus as ArqJobStatus
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    EraseMyData,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobProgress, JobQueued, TextReply
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import QUEUE_NAME

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
OTHER = Requester("test", "u2", "Grace", chat_id="c2", server_id="s1")


async def test_erasure_cancels_a_running_training_and_leaves_no_blob(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    # Far more steps than the test waits for: only the erasure ends it in time.
    bot.policy = dataclasses.replace(
        bot.policy, train=dataclasses.replace(bot.policy.train, steps=100_000)
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "endless"))
    assert isinstance(queued, JobQueued)
    await inbox.next((JobProgress,))  # it is running
    blob_dir = frontend.settings.blob_dir
    assert any(p.is_file() for p in blob_dir.rglob("*"))

    reply = await bot.handle(EraseMyData(ME, confirmed=True))

    assert isinstance(reply, TextReply)
    assert "Erased: 1 style(s), 2 reference image(s)" in reply.text
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    # The erasure took the job's payload off the queue at once; the worker stops at its
    # next step. Its result is recorded without arguments, and deleted again when the
    # front end forgets the erased job's late event: either way, nothing of it is left
    # but "cancelled", and the job is no longer running anywhere.
    in_progress = f"arq:in-progress:{queued.job_id}"
    for _poll in range(600):
        status = await arq_job.status()
        if status in (ArqJobStatus.complete, ArqJobStatus.not_found) and not (
            await frontend.queue.redis.exists(in_progress)
        ):
            break
        await asyncio.sleep(0.1)
    assert status in (ArqJobStatus.complete, ArqJobStatus.not_found)
    outcome = await arq_job.result_info()
    if outcome is not None:
        assert outcome.result == {"cancelled": True}
        assert not outcome.args
    assert await frontend.uow.jobs.get_job(queued.job_id) is None
    assert await frontend.uow.users.find_user("test", "u1") is None
    # The training images, and any checkpoint the worker had saved, are gone.
    assert [p for p in blob_dir.rglob("*") if p.is_file()] == []

    # The worker is free again: the next user is served.
    await bot.handle(Imagine(OTHER, "after the erasure", seed=1))
    done = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(done.reply, ImagesReady)
