"""Owners take turns, and each job's turn is fixed when it is queued."""

from __future__ import annotations

from tests.fakes.lane_turns import LaneTurns, next_round

from stylebot.queue.fairness import UNNUMBERED, Turn, in_turn_order, lanes_in_fair_order


def _queue(lane: LaneTurns, *job_ids: str) -> None:
    """Queue jobs named "<owner>-<n>" ("anon-<n>": no owner)."""
    for job_id in job_ids:
        who = job_id.split("-")[0]
        lane.give(job_id, None if who == "anon" else who)


def _run(lane: LaneTurns, job_id: str) -> None:
    """What a worker does with a job: start it, then finish it."""
    lane.started(job_id)
    lane.remove(job_id)


def test_one_owner_s_burst_takes_turns_with_everyone_else() -> None:
    lane = LaneTurns()
    _queue(lane, "a-1", "a-2", "a-3", "a-4", "b-1", "c-1", "b-2")
    assert lane.order() == ["a-1", "b-1", "c-1", "a-2", "b-2", "a-3", "a-4"]


def test_arrival_order_is_kept_when_everyone_has_one_job() -> None:
    lane = LaneTurns()
    _queue(lane, "c-1", "a-1", "b-1")
    assert lane.order() == ["c-1", "a-1", "b-1"]


def test_jobs_without_an_owner_are_each_their_own_owner() -> None:
    lane = LaneTurns()
    _queue(lane, "a-1", "a-2", "anon-1", "anon-2")
    assert lane.order() == ["a-1", "anon-1", "anon-2", "a-2"]


def test_a_finished_job_does_not_let_its_owner_s_next_job_jump_ahead() -> None:
    # Counting turns from the queue alone, a-2 would become a's first job
    # once a-1 is done, and go ahead of b-1, which waited longer.
    lane = LaneTurns()
    _queue(lane, "a-1", "a-2", "a-3", "b-1", "b-2", "b-3")
    _run(lane, "a-1")
    assert lane.order() == ["b-1", "a-2", "b-2", "a-3", "b-3"]
    _run(lane, "b-1")
    _run(lane, "a-2")
    assert lane.order() == ["b-2", "a-3", "b-3"]


def test_an_owner_back_from_idle_starts_at_the_current_round_with_no_banked_turns() -> None:
    lane = LaneTurns()
    _queue(lane, "a-0")
    _run(lane, "a-0")
    _queue(lane, *[f"b-{i}" for i in range(10)])
    for i in range(5):
        _run(lane, f"b-{i}")
    assert lane.current_round == 4
    _queue(lane, "a-1", "a-2", "a-3", "a-4")
    # a's first job takes round 4 (b's round-4 job is done), then one a round.
    assert lane.order() == ["a-1", "b-5", "a-2", "b-6", "a-3", "b-7", "a-4", "b-8", "b-9"]


def test_the_round_of_a_new_job_is_never_behind_the_current_round() -> None:
    assert next_round(owner_next_round=1, current_round=7) == 7
    assert next_round(owner_next_round=9, current_round=7) == 9
    assert next_round(owner_next_round=0, current_round=0) == 0


def test_a_retried_job_keeps_its_turn_and_does_not_move_the_round_back() -> None:
    lane = LaneTurns()
    _queue(lane, "a-1", "a-2", "a-3", "b-1")
    lane.started("a-1")
    lane.started("b-1")
    lane.started("a-2")
    assert lane.current_round == 1
    # a-1's worker died: a-1 is started again (never removed) in its old turn.
    lane.started("a-1")
    assert lane.current_round == 1
    assert lane.order() == ["a-1", "b-1", "a-2", "a-3"]
    # Queueing a job again does not give it a new turn.
    before = lane.turns["a-1"]
    assert lane.give("a-1", "a") == before


def test_a_cancelled_job_leaves_the_order_and_the_others_keep_their_turns() -> None:
    lane = LaneTurns()
    _queue(lane, "a-1", "a-2", "b-1", "b-2")
    lane.remove("b-1")
    assert lane.order() == ["a-1", "a-2", "b-2"]
    assert lane.turns["b-2"] == Turn(1, 4)


def test_workers_start_jobs_without_a_turn_first_then_by_turn() -> None:
    turns = {"x": Turn(1, 5), "y": Turn(0, 7), "z": Turn(0, 6)}
    assert in_turn_order(["old-2", "x", "y", "old-1", "z"], turns) == [
        "old-2",
        "old-1",
        "z",
        "y",
        "x",
    ]
    assert Turn(0, 1) > UNNUMBERED


def test_generation_lane_goes_first_and_each_lane_has_turns_of_its_own() -> None:
    generation, training = LaneTurns(), LaneTurns()
    training.give("a-train", "a")
    generation.give("a-gen-1", "a")
    generation.give("b-gen", "b")
    training.give("b-train", "b")
    generation.give("a-gen-2", "a")
    turns = {**generation.turns, **training.turns}
    arrived = ["a-train", "a-gen-1", "b-gen", "b-train", "a-gen-2"]
    order = lanes_in_fair_order(arrived, turns, lambda job_id: job_id.endswith("train"))
    # a's training run does not push a's generation back.
    assert order == ["a-gen-1", "b-gen", "a-gen-2", "a-train", "b-train"]


def test_turns_read_back_as_stored() -> None:
    turn = Turn(12, 3456)
    assert Turn.decode(turn.encode()) == turn
    assert Turn.decode(turn.encode().encode()) == turn
