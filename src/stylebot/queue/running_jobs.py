"""How a worker's shutdown reaches the jobs it runs: work stops, finished work is kept.

On SIGTERM each running job is asked to stop: its task is cancelled once, it stops
at its next step (`job_lifecycle._within_limits`) and goes back on the queue. A job
that only records how it ended (its work done, it stores and tells its result; or it
failed, and tells that) is left to finish: stopping it then would throw the work away
or have it done again. It is stopped all the same after `RECORDING_GRACE_S` (Redis
or the blob store down), so a SIGTERM is obeyed throughout. A job arq starts after
the signal (it had read the job just before) stops before it begins.

Only a job's own task is cancelled, never arq's task around it: arq's recording of
a job that has returned must not be cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

# Storing and telling a result takes well under a second; this is for a slow blob
# store, and well inside the 120 s a service manager gives a worker to stop.
RECORDING_GRACE_S = 60.0


def arq_time_limit_s(limit_s: float) -> float:
    """arq's limit for a job whose own is `limit_s`: the backstop, well after it.

    arq's limit cancels a job without a word to its user and records it failed. A
    job ends itself at its own limit and says why; one whose work was done in time
    but whose result is slow to store (a rented GPU far from the object store) has
    its own limit lifted (`Interruption.now_recording`) and the grace a shutdown
    gives it (`RECORDING_GRACE_S`) before arq's.
    """
    return limit_s + RECORDING_GRACE_S


class StoppableJob(Protocol):
    @property
    def recording(self) -> bool:
        """Its work is done: it stores and tells its result."""
        ...


class RunningJobs:
    """The jobs running in one worker, for its shutdown to stop (see the module doc)."""

    def __init__(self, recording_grace_s: float = RECORDING_GRACE_S) -> None:
        self._jobs: dict[asyncio.Task[Any], StoppableJob] = {}
        self._grace_s = recording_grace_s
        self.stopping = False

    @contextlib.contextmanager
    def running(self, job: StoppableJob) -> Iterator[None]:
        """While the current task runs `job`; if the worker is stopping, it stops at
        its first step."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a job runs in a task of its own")
        if self.stopping:
            _stop(task)
        self._jobs[task] = job
        try:
            yield
        finally:
            self._jobs.pop(task, None)

    def stop_all(self) -> tuple[int, int]:
        """Ask every running job to stop: (how many stop at their next step, how many
        first finish recording their result)."""
        self.stopping = True
        stopped = recording = 0
        for task, job in list(self._jobs.items()):
            if job.recording:
                asyncio.get_running_loop().call_later(self._grace_s, self._stop_late, task, job)
                recording += 1
            else:
                stopped += _stop(task)
        return stopped, recording

    def _stop_late(self, task: asyncio.Task[Any], job: StoppableJob) -> None:
        # Only the job the grace was for: its task may have moved on since (arq's own
        # recording of it, which must not be cut short).
        if self._jobs.get(task) is job:
            _stop(task)


def _stop(task: asyncio.Task[Any]) -> bool:
    # Once: a second cancel would cut short the wait for the device thread to stop
    # (and a training's checkpoint), see `Interruption.settled`.
    if task.done() or task.cancelling():
        return False
    task.cancel()
    return True
