"""Generation never waits behind a whole training job on the same worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobProgress, JobQueued

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TRAINER = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
ARTIST = Requester("test", "u2", "Bea", chat_id="c2", server_id="s1")
STEPS = 150


async def test_a_generation_finishes_while_a_long_training_runs_and_training_then_finishes(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
    bot.policy = dataclasses.replace(
        bot.policy, train=dataclasses.replace(bot.policy.train, steps=STEPS)
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(TRAINER, files))
    await bot.handle(ConfirmConsent(TRAINER, "own-work", rights_confirmed=True))
    training = await bot.handle(TrainStyle(TRAINER, "patient"))
    assert isinstance(training, JobQueued)
    await inbox.next((JobProgress,))  # training holds the device now

    imagined = await bot.handle(Imagine(ARTIST, "a lighthouse", seed=3, steps=2))
    assert isinstance(imagined, JobQueued)
    images = await inbox.next((ImagesReady,), within=60)
    assert isinstance(images.reply, ImagesReady)
    assert images.reply.job_id == imagined.job_id

    # The image came while the training job was still running...
    job = await frontend.uow.jobs.get_job(training.job_id)
    assert job is not None
    assert job.status is JobStatus.RUNNING
    assert 0 < job.step < STEPS

    # ...and the training then ran to its end.
    done = await inbox.next((JobFinished,), within=120)
    assert isinstance(done.reply, JobFinished)
    assert done.reply.job_id == training.job_id
    assert done.reply.ok, done.reply.text
    job = await frontend.uow.jobs.get_job(training.job_id)
    assert job is not None
    assert job.status is JobStatus.FINISHED
