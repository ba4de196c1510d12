"""How long a run of steps has left, from the pace of its recent steps."""

from __future__ import annotations

import statistics
from collections import deque

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
