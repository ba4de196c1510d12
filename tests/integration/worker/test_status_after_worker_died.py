"""/status tells the truth after a worker dies: not "running" for a whole lease.

A real worker process (`python -m stylebot worker`) on the real embedded Redis is
SIGKILLed mid-training with a long lease still held; within its presence key's
lifetime /status says the job's worker stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from pathlib import Path

import redis as sync_redis
from tests.support.processes import StylebotProcess
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.commands import (
    ConfirmConsent,
    IncomingFile,
    ShowStatus,
    TrainStyle,
    UploadImages,
)
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import JobQueued, TextReply
from stylebot.queue.keys import arq_in_progress_key, presence_key
from stylebot.queue.local_worker import settings_env
from stylebot.queue.worker_presence import PRESENCE_TTL_S
from stylebot.terminal_status import read_snapshot, render_snapshot

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
# Far more than the test waits: the dead worker's lease is held throughout.
LEASE_S = 120.0
STEPS = 2000


async def _status_text(frontend: FrontEnd) -> str:
    reply = await frontend.bot.handle(ShowStatus(ME))
    assert isinstance(reply, TextReply)
    return reply.text


async def test_status_says_the_worker_stopped_soon_after_it_was_killed(
    frontend: FrontEnd, inbox: Inbox, tmp_path: Path
) -> None:
    # The inbox starts the front end's delivery: progress events reach the records.
    bot = frontend.bot
    bot.policy = dataclasses.replace(
        bot.policy, train=dataclasses.replace(bot.policy.train, steps=STEPS)
    )
    files = tuple(
        IncomingFile(p.name, p.read_bytes()) for p in make_sample_images(tmp_path / "refs", 2)
    )
    await bot.handle(UploadImages(ME, files))
    await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
    queued = await bot.handle(TrainStyle(ME, "sturdy"))
    assert isinstance(queued, JobQueued), queued
    redis = frontend.queue.redis

    env = settings_env(frontend.settings.replace(job_lease_s=LEASE_S), frontend.redis_url)
    env["OMP_NUM_THREADS"] = "1"
    worker = StylebotProcess.start("worker", ["worker"], env, tmp_path / "worker.log")
    try:
        step = 0

        async def refresh_step() -> None:
            nonlocal step
            job = await frontend.uow.jobs.get_job(queued.job_id)
            assert job is not None
            step = job.step if job.status is JobStatus.RUNNING else 0

        async with asyncio.timeout(180):
            while step < 1:
                assert worker.running(), worker.describe()
                await refresh_step()
                await asyncio.sleep(0.05)
        alive = await _status_text(frontend)
        client = sync_redis.Redis.from_url(frontend.redis_url)
        try:
            before = await asyncio.to_thread(read_snapshot, client)
        finally:
            client.close()
        assert [r.worker_stopped for r in before.running] == [False]
        assert re.search(rf"{queued.job_id}: running, step \d+/{STEPS}", alive), alive
        # The lease names its worker, and that worker is present.
        holder = await redis.get(arq_in_progress_key(queued.job_id))
        assert holder is not None
        assert holder.decode().endswith(f"-{worker.pid}")
        assert await redis.exists(presence_key(holder.decode()))

        worker.kill()
        killed_at = time.monotonic()
        assert await redis.exists(arq_in_progress_key(queued.job_id)), "lease still held"
        text = await _status_text(frontend)
        while "its worker stopped" not in text:
            assert time.monotonic() - killed_at < PRESENCE_TTL_S + 5, text
            await asyncio.sleep(0.25)
            text = await _status_text(frontend)
        assert "running" not in text
        assert re.search(
            rf"train {queued.job_id}: waiting \(reached step \d+/{STEPS}\): its worker "
            "stopped; it resumes from its last checkpoint when a worker takes it up",
            text,
        ), text
        # Well inside the lease: it was the presence key that told.
        assert await redis.exists(arq_in_progress_key(queued.job_id))
        # The operator's `stylebot status` says so too.
        client = sync_redis.Redis.from_url(frontend.redis_url)
        try:
            snapshot = await asyncio.to_thread(read_snapshot, client)
        finally:
            client.close()
        (running,) = snapshot.running
        assert (running.job_id, running.worker_stopped) == (queued.job_id, True)
        assert "worker stopped: waits for another" in render_snapshot(snapshot)
    finally:
        worker.stop()
