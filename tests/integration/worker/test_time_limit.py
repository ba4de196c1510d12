"""A job that runs past its time limit fails with a message, and the worker stops it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.jobs import Job as ArqJob
from arq.jobs import JobResult
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
from stylebot.bot.core.model import JobStatus, Requester, StyleStatus
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import QUEUE_NAME, checkpoint_key
from stylebot.queue.worker import build_worker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
LIMIT_S = 2


@pytest.fixture
async def limited_worker(frontend: FrontEnd, tiny_engine: Any) -> AsyncIterator[None]:
    """A worker whose jobs may take LIMIT_S seconds, training and generation alike."""
    settings = frontend.settings.replace(generate_timeout_s=LIMIT_S, train_timeout_s=LIMIT_S)
    worker = build_worker(settings, frontend.redis_url, handle_signals=False, engine=tiny_engine)
    task = asyncio.create_task(worker.async_run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.close()


async def _arq_outcome(frontend: FrontEnd, job_id: str) -> JobResult:
    """What arq recorded when it finished the job."""
    redis = frontend.queue.redis
    job = ArqJob(job_id, redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job)
    for _ in range(600):
        info = await job.result_info()
        if info is not None:
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"arq recorded no result for {job_id} in 30 s")


async def test_a_generation_past_its_limit_fails_with_the_limit_in_the_message(
    frontend: FrontEnd, inbox: Inbox, limited_worker: None
) -> None:
    # 60 steps at 512 px on the CPU take far longer than LIMIT_S.
    queued = await frontend.bot.handle(
        Imagine(ME, "a slow lighthouse", steps=60, width=512, height=512)
    )
    assert isinstance(queued, JobQueued), queued
    done = await inbox.next((JobFinished, ImagesReady), within=60)
    assert isinstance(done.reply, JobFinished)
    assert not done.reply.ok
    assert done.reply.job_id == queued.job_id
    assert f"took longer than the {LIMIT_S} s limit" in done.reply.text
    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert f"{LIMIT_S} s limit" in (job.error or "")
    # arq records the failure itself, and does not run the job again.
    outcome = await _arq_outcome(frontend, queued.job_id)
    assert not outcome.success
    assert outcome.job_try == 1

    # The worker stopped the timed-out generation: a quick one is served next.
    quick = await frontend.bot.handle(Imagine(ME, "a quick boat", steps=1, width=256, height=256))
    assert isinstance(quick, JobQueued)
    ready = await inbox.next((JobFinished, ImagesReady), within=60)
    assert isinstance(ready.reply, ImagesReady), ready.reply
    assert ready.reply.job_id == quick.job_id


async def test_a_training_past_its_limit_fails_and_its_style_too(
    frontend: FrontEnd, inbox: Inbox, limited_worker: None, tmp_path: Path
) -> None:
    bot = frontend.bot
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
    done = await inbox.next((JobFinished,), within=60)
    assert isinstance(done.reply, JobFinished)
    assert not done.reply.ok
    assert f"took longer than the {LIMIT_S} s limit" in done.reply.text
    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    user = await frontend.uow.users.get_or_create_user("test", "u1", "Ada")
    style = await frontend.uow.styles.find_style(user.id, "endless")
    assert style is not None
    assert style.status is StyleStatus.FAILED
    outcome = await _arq_outcome(frontend, queued.job_id)
    assert not outcome.success
    # A failed run leaves nothing to resume from.
    assert await frontend.queue.redis.get(checkpoint_key(queued.job_id)) is None
