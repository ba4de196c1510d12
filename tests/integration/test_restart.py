"""Nothing lost across a front-end restart: results wait in the stream until delivered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.support.stack import Inbox

from stylebot.bootstrap import open_frontend
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import ImagesReady, JobQueued
from stylebot.config import Settings
from stylebot.queue.worker import build_worker

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1")


async def test_a_result_finished_while_no_front_end_could_deliver_arrives_after_restart(
    settings: Settings, tiny_engine: Any
) -> None:
    async with open_frontend(settings) as first:
        # No sink for "test": this front end cannot tell the user anything.
        first.start_delivery()
        queued = await first.bot.handle(Imagine(ME, "a quiet harbour", seed=4))
        assert isinstance(queued, JobQueued)
        worker = build_worker(
            settings,
            first.redis_url,
            burst=True,
            handle_signals=False,
            engine=tiny_engine,
        )
        async with asyncio.timeout(60):
            await worker.async_run()
        await worker.close()
        # Wait until the first front end has recorded the result: it was
        # handled but could not be delivered, the harder case for a restart.
        async with asyncio.timeout(10):
            await _until_finished(first.uow, queued.job_id)

    async with open_frontend(settings) as second:
        inbox = Inbox()
        second.add_sink("test", inbox)
        second.start_delivery()
        note = await inbox.next((ImagesReady,), within=30)
        assert isinstance(note.reply, ImagesReady)
        assert note.reply.job_id == queued.job_id
        assert len(note.reply.images) == 1


async def _until_finished(repo: Any, job_id: str) -> None:
    """Poll the job record: there is no event for "recorded but not delivered"."""
    job = await repo.jobs.get_job(job_id)
    while job is None or job.status is not JobStatus.FINISHED:
        await asyncio.sleep(0.05)
        job = await repo.jobs.get_job(job_id)
