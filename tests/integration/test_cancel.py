"""/cancel through the real queue: a running training job stops at the next step."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from arq.jobs import Job as ArqJob
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    CancelJob,
    ConfirmConsent,
    Imagine,
    IncomingFile,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import JobStatus, Requester, StyleStatus
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobProgress, JobQueued
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import QUEUE_NAME

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")


async def test_cancel_stops_training_within_a_step_and_frees_the_worker(
    frontend: FrontEnd, inbox: Inbox, worker: None, tmp_path
) -> None:
    bot = frontend.bot
    # Far more steps than the test waits for: only a cancel ends it in time.
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

    reply = await bot.handle(CancelJob(ME))
    assert isinstance(reply, JobFinished)
    assert reply.job_id == queued.job_id
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    async with asyncio.timeout(30):
        result = await arq_job.result(poll_delay=0.1)
    assert result == {"cancelled": True}

    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED
    assert job.step < 100_000
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "endless")
    assert style is not None
    assert style.status is StyleStatus.FAILED

    # The worker is free again: the next request is served.
    await bot.handle(Imagine(ME, "after the cancel", seed=1))
    done = await inbox.next((ImagesReady, JobFinished))
    assert isinstance(done.reply, ImagesReady)


async def test_a_job_cancelled_while_queued_never_runs(
    frontend: FrontEnd, inbox: Inbox, tmp_path
) -> None:
    """Cancelled before any worker exists; the worker that comes later skips it."""
    bot = frontend.bot
    queued = await bot.handle(Imagine(ME, "never", seed=1))
    assert isinstance(queued, JobQueued)
    await bot.handle(CancelJob(ME))

    from stylebot.queue.worker import build_worker

    arq_worker = build_worker(
        frontend.settings,
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=object(),  # must never be touched
    )
    async with asyncio.timeout(30):
        await arq_worker.async_run()
    await arq_worker.close()
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    assert await arq_job.result(timeout=5) == {"cancelled": True}
    outputs = await frontend.uow.outputs.job_outputs(queued.job_id)
    assert all(o.blob_key is None for o in outputs)
