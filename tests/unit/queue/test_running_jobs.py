"""A worker's shutdown stops the jobs that work, lets those that record their result
finish (for a while), and stops a job that starts after it before it begins."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from stylebot.queue.running_jobs import RunningJobs


@dataclass
class _Job:
    recording: bool = False


async def _run(jobs: RunningJobs, job: _Job, started: asyncio.Event, seconds: float) -> str:
    with jobs.running(job):
        started.set()
        await asyncio.sleep(seconds)
    return "finished"


async def _started(jobs: RunningJobs, job: _Job, seconds: float) -> asyncio.Task[str]:
    started = asyncio.Event()
    task = asyncio.create_task(_run(jobs, job, started, seconds))
    await started.wait()
    return task


async def test_a_working_job_stops_at_once_and_a_recording_one_finishes() -> None:
    jobs = RunningJobs(recording_grace_s=5.0)
    working = await _started(jobs, _Job(), seconds=10)
    recording = await _started(jobs, _Job(recording=True), seconds=0.2)
    assert jobs.stop_all() == (1, 1)
    assert await recording == "finished"
    with pytest.raises(asyncio.CancelledError):
        await working


async def test_a_recording_job_is_stopped_after_the_grace() -> None:
    jobs = RunningJobs(recording_grace_s=0.3)
    stuck = await _started(jobs, _Job(recording=True), seconds=30)  # its Redis is down
    loop = asyncio.get_running_loop()
    asked = loop.time()
    jobs.stop_all()
    with pytest.raises(asyncio.CancelledError):
        await stuck
    assert 0.3 <= loop.time() - asked < 5


async def test_a_job_is_stopped_once_however_often_the_worker_is_told() -> None:
    """A second cancel would cut short what a stopped job still does (a training
    saving its checkpoint)."""
    jobs = RunningJobs()
    job = _Job()
    cleaned_up = asyncio.Event()

    async def holds_on() -> None:
        with jobs.running(job):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await asyncio.sleep(0.2)  # a second signal comes meanwhile
                cleaned_up.set()
                raise

    task = asyncio.create_task(holds_on())
    await asyncio.sleep(0.01)
    assert jobs.stop_all() == (1, 0)
    await asyncio.sleep(0.05)
    assert jobs.stop_all() == (0, 0)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned_up.is_set()


async def test_the_grace_ends_only_the_job_it_was_for() -> None:
    """The task goes on once its job has returned (arq records it): not cancelled."""
    jobs = RunningJobs(recording_grace_s=0.1)
    job = _Job(recording=True)
    left = asyncio.Event()

    async def records_then_moves_on() -> str:
        with jobs.running(job):
            await asyncio.sleep(0.01)
        left.set()
        await asyncio.sleep(0.4)  # arq's recording of the job, past the grace
        return "recorded"

    task = asyncio.create_task(records_then_moves_on())
    await asyncio.sleep(0)
    assert jobs.stop_all() == (0, 1)
    assert await task == "recorded"
    assert left.is_set()


async def test_a_job_started_after_the_shutdown_stops_before_it_begins() -> None:
    jobs = RunningJobs()
    jobs.stop_all()
    began = asyncio.Event()

    async def late() -> None:
        with jobs.running(_Job()):
            await asyncio.sleep(0)  # its first step
            began.set()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(late())
    assert not began.is_set()
