"""A worker stopped (SIGTERM) mid-generation stops between two steps, and the job runs again;
stopped once its images are made, it finishes the job rather than run it twice.

Real worker processes (`python -m stylebot worker`), real Redis: the first
worker is told to stop while it generates; it must exit long before the
generation would have finished, without reporting the job failed or
cancelled; a second worker then runs the job to the end, and the interrupted
run did not use up one of the job's tries.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from arq.jobs import Job as ArqJob
from tests.support.redis_outage import redis_pid
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import JobStatus, Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued
from stylebot.queue.connection import deserialize_job
from stylebot.queue.keys import EVENTS_STREAM, QUEUE_NAME
from stylebot.queue.local_worker import settings_env
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_socket import socket_path_for
from stylebot.storage.blob_storage import open_blob_store

pytestmark = pytest.mark.slow

ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
STEPS = 40  # at 512 px, tens of seconds on a CPU: far longer than a stop may take


def _start_worker(frontend: FrontEnd, log: Path) -> subprocess.Popen[bytes]:
    env = settings_env(frontend.settings, frontend.redis_url)
    env["OMP_NUM_THREADS"] = "1"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stylebot", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _events_of(frontend: FrontEnd, job_id: str) -> list[JobEvent]:
    return [
        e
        for _id, fields in await frontend.queue.redis.xrange(EVENTS_STREAM)
        if (e := JobEvent.from_json(fields[b"event"])).job_id == job_id
    ]


async def _progress(frontend: FrontEnd, job_id: str) -> list[tuple[float, int]]:
    """(Redis time in seconds, step) of the job's progress events so far."""
    seen = []
    for entry_id, fields in await frontend.queue.redis.xrange(EVENTS_STREAM):
        event = JobEvent.from_json(fields[b"event"])
        if event.job_id == job_id and event.kind == "progress":
            millis = int(entry_id.decode().split("-")[0])  # stream ids are Redis's clock
            seen.append((millis / 1000, event.step))
    return seen


async def test_a_stopped_worker_leaves_its_generation_to_another_without_losing_a_try(
    frontend: FrontEnd, inbox: Inbox, tmp_path: Path
) -> None:
    queued = await frontend.bot.handle(
        Imagine(ME, "a slow lighthouse", steps=STEPS, width=512, height=512, seed=5)
    )
    assert isinstance(queued, JobQueued), queued
    first = _start_worker(frontend, tmp_path / "worker-a.log")
    try:
        async with asyncio.timeout(180):
            while len(progress := await _progress(frontend, queued.job_id)) < 3:
                assert first.poll() is None, (tmp_path / "worker-a.log").read_text()
                await asyncio.sleep(0.05)
        (early_at, early_step), (late_at, late_step) = progress[1], progress[-1]
        assert late_step > early_step
        step_s = (late_at - early_at) / (late_step - early_step)
        left_s = (STEPS - late_step) * step_s

        first.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        await asyncio.to_thread(first.wait, 120)
        stopped_in = time.monotonic() - stopping
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    log_a = (tmp_path / "worker-a.log").read_text()
    assert first.returncode == 0, log_a
    # It stopped between two steps, not after the image: well within the time
    # the rest of the generation takes at the pace measured above.
    assert stopped_in < left_s / 2, (stopped_in, step_s, late_step, log_a)
    assert "interrupted by the worker's shutdown" in log_a

    # Neither the user nor the records hear of a failure or a cancel.
    events = await _events_of(frontend, queued.job_id)
    assert not [e for e in events if e.kind in ("failed", "cancelled", "finished")]
    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    second = _start_worker(frontend, tmp_path / "worker-b.log")
    try:
        done = await inbox.next((ImagesReady, JobFinished), within=300)
    finally:
        second.terminate()
        second.wait(timeout=60)
    assert isinstance(done.reply, ImagesReady), done.reply
    assert done.reply.job_id == queued.job_id
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    outcome = await arq_job.result_info()
    assert outcome is not None
    assert outcome.success
    # The run the shutdown cut short gave its try back.
    assert outcome.job_try == 1
    job = await frontend.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.FINISHED


async def test_a_worker_stopped_once_its_images_are_made_finishes_the_job_and_runs_it_once(
    frontend: FrontEnd, inbox: Inbox, tmp_path: Path
) -> None:
    """SIGTERM while the images are stored and told (here held up by a frozen Redis):
    stopping the job then would throw the images away, or, once the user had them,
    make and send them a second time from another worker."""
    queued = await frontend.bot.handle(
        Imagine(ME, "a lighthouse", steps=4, width=256, height=256, seed=7)
    )
    assert isinstance(queued, JobQueued), queued
    blobs = open_blob_store(frontend.settings)
    stored_before = set(blobs.stored_keys())
    redis = redis_pid(socket_path_for(frontend.settings.data_dir))
    assert redis is not None
    log = tmp_path / "worker.log"
    worker = _start_worker(frontend, log)
    try:
        async with asyncio.timeout(180):
            while not [e for e in await _events_of(frontend, queued.job_id) if e.kind == "started"]:
                assert worker.poll() is None, log.read_text()
                await asyncio.sleep(0.05)
        # From here the worker reaches Redis only once it is thawed: the images are
        # made and stored, and the job waits to record and tell them.
        os.kill(redis, signal.SIGSTOP)
        try:
            async with asyncio.timeout(120):
                while not set(blobs.stored_keys()) - stored_before:
                    assert worker.poll() is None, log.read_text()
                    await asyncio.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.5)  # the worker has taken the signal while it waits
        finally:
            os.kill(redis, signal.SIGCONT)
        try:
            done = await inbox.next((ImagesReady, JobFinished), within=60)
        except TimeoutError:
            pytest.fail(f"the images were never sent:\n{log.read_text()}")
        await asyncio.to_thread(worker.wait, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    text = log.read_text()
    assert worker.returncode == 0, text
    assert isinstance(done.reply, ImagesReady), done.reply
    assert done.reply.job_id == queued.job_id
    # It was told to stop while it recorded its images (not after it had finished).
    assert "0 jobs running stop at their next step, 1 finish recording their results" in text
    assert "interrupted by the worker's shutdown" not in text
    # arq recorded the run that made the images: nothing is left to run again.
    arq_job = ArqJob(
        queued.job_id, frontend.queue.redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job
    )
    outcome = await arq_job.result_info()
    assert outcome is not None, text
    assert outcome.success
    assert outcome.job_try == 1
    assert await frontend.queue.redis.zscore(QUEUE_NAME, queued.job_id) is None
    kinds = [e.kind for e in await _events_of(frontend, queued.job_id) if e.kind != "progress"]
    assert kinds == ["started", "finished"]
