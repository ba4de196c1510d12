"""The time left in a run of steps, from the pace of its recent steps."""

from __future__ import annotations

import pytest

from stylebot.queue.progress import StepTimeEstimate


def test_nothing_is_known_before_two_steps() -> None:
    pace = StepTimeEstimate()
    assert pace.seconds_left(0, 100) is None
    pace.observe(1, 10.0)
    assert pace.seconds_left(1, 100) is None


def test_steady_steps_give_their_time_times_the_steps_left() -> None:
    pace = StepTimeEstimate()
    for step in range(1, 11):
        pace.observe(step, 100.0 + 0.5 * step)
    assert pace.seconds_left(10, 400) == pytest.approx(0.5 * 390)
    assert pace.seconds_left(400, 400) == 0


def test_a_pause_for_generation_does_not_move_the_estimate() -> None:
    pace = StepTimeEstimate(window=9)
    at = 0.0
    for step in range(1, 9):
        at += 1.0
        pace.observe(step, at)
    at += 30.0  # training lent the device to a generation for 30 s
    pace.observe(9, at)
    assert pace.seconds_left(9, 100) == pytest.approx(91.0)


def test_the_estimate_follows_a_lasting_change_of_pace() -> None:
    pace = StepTimeEstimate(window=5)
    at = 0.0
    for step in range(1, 11):
        at += 1.0
        pace.observe(step, at)
    for step in range(11, 21):
        at += 3.0  # a second job now shares the device at every step
        pace.observe(step, at)
    assert pace.seconds_left(20, 30) == pytest.approx(30.0)


def test_steps_skipped_between_calls_are_averaged_over() -> None:
    pace = StepTimeEstimate()
    pace.observe(10, 0.0)  # a resumed run starts at step 10
    pace.observe(14, 2.0)
    assert pace.seconds_left(14, 24) == pytest.approx(5.0)
