"""A job's progress for people: how long a run of steps has left, and throttled
progress events from the device thread."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque

from stylebot.queue.events import EventPublisher
from stylebot.queue.loop_handoff import loop_stopped
from stylebot.queue.payloads import JobEvent, JobKind

# Enough steps that a few slow ones do not move the median, few enough that
# the estimate follows a real change of pace (another job on the device).
ETA_WINDOW_STEPS = 21


class StepTimeEstimate:
    """Seconds left in a run, from the median time of the last few steps.

    The median, not a mean: while training, the worker lends the device to
    waiting generation requests between two steps, and the step around such
    a pause takes many times as long as the others. A mean would jump with
    every pause and take many steps to come back; the median ignores pauses
    as long as they are fewer than half of the recent steps (and when they
    are more, they are the pace, and the estimate should include them).
    """

    def __init__(self, window: int = ETA_WINDOW_STEPS) -> None:
        self._step_times: deque[float] = deque(maxlen=max(1, window))
        self._last: tuple[int, float] | None = None

    def observe(self, step: int, at: float) -> None:
        """Step `step` finished at monotonic time `at`."""
        if self._last is not None and step > self._last[0]:
            last_step, last_at = self._last
            per_step = max(0.0, at - last_at) / (step - last_step)
            self._step_times.append(per_step)
        self._last = (step, at)

    def seconds_left(self, step: int, total: int) -> float | None:
        """Seconds until step `total`, after step `step`; None before two steps were seen."""
        if not self._step_times:
            return None
        return statistics.median(self._step_times) * max(0, total - step)


# Progress events are for people: a few a second is plenty, and more would
# only fill the stream while a fast (tiny-model) job runs.
PROGRESS_INTERVAL_S = 0.5


class ProgressReporter:
    """Turns calls from the device thread into throttled events on the loop."""

    def __init__(
        self, publisher: EventPublisher, loop: asyncio.AbstractEventLoop, job_id: str, kind: JobKind
    ) -> None:
        self.publisher = publisher
        self.loop = loop
        self.job_id = job_id
        self.kind = kind
        self._last: float | None = None
        # Every step is timed, also those whose progress is not sent.
        self._pace = StepTimeEstimate()

    def __call__(self, step: int, total: int, loss: float | None = None) -> None:
        # The first call is always told: it says where a resumed run picks up.
        now = time.monotonic()
        self._pace.observe(step, now)
        if self._last is not None and step != total and now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        eta_s = self._pace.seconds_left(step, total)
        event = JobEvent(
            self.job_id, self.kind, "progress", step=step, total=total, loss=loss, eta_s=eta_s
        )
        if loop_stopped(self.loop):
            return  # the worker is exiting: nobody would send it
        asyncio.run_coroutine_threadsafe(self.publisher.publish(event), self.loop)
