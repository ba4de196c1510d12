"""Owners take turns: the order jobs get the device, and the positions users see."""

from __future__ import annotations

from stylebot.queue.fairness import fair_order, queue_positions


def _owner(job: str) -> str | None:
    who = job.split("-")[0]
    return None if who == "anon" else who


def test_one_owner_s_burst_takes_turns_with_everyone_else() -> None:
    arrived = ["a-1", "a-2", "a-3", "a-4", "b-1", "c-1", "b-2"]
    assert fair_order(arrived, _owner) == ["a-1", "b-1", "c-1", "a-2", "b-2", "a-3", "a-4"]


def test_arrival_order_is_kept_when_everyone_has_one_job() -> None:
    arrived = ["c-1", "a-1", "b-1"]
    assert fair_order(arrived, _owner) == arrived


def test_jobs_without_an_owner_are_each_their_own_owner() -> None:
    arrived = ["a-1", "a-2", "anon-1", "anon-2"]
    assert fair_order(arrived, _owner) == ["a-1", "anon-1", "anon-2", "a-2"]


def test_a_running_job_counts_as_its_owner_s_turn() -> None:
    # a-1 is running (still listed first): b's new job goes before a's next.
    assert fair_order(["a-1", "a-2", "b-1"], _owner) == ["a-1", "b-1", "a-2"]


def test_positions_follow_the_fair_order() -> None:
    arrived = ["a-1", "a-2", "b-1"]
    positions = queue_positions(arrived, _owner)
    assert positions == {0: 1, 1: 3, 2: 2}
