"""The order in which queued jobs get the device: owners take turns, and each
job's turn is fixed when it is queued.

Rule (round robin with memory, like start-time fair queuing): each lane
(generation, training) has a current round, the highest round of a job a
worker has started. A job queued by an owner takes round
max(owner's next round, current round), and the owner's next round becomes
one more. Jobs start by (round, arrival). So one user's burst spreads over
one round a job, a later user's job lands in the current round (ahead of the
rest of the burst), and an owner who had nothing queued starts at the current
round: nobody banks turns while idle. A turn never changes after it is given,
so finished jobs cannot let anyone's later job jump ahead.

Turns live in Redis (`stylebot.queue.turns`), given atomically at enqueue and
read by every worker and by the front end, so the positions users are told
are the order workers start jobs in. The tests' `LaneTurns` (tests/fakes/lane_turns.py)
is the rule in plain Python, which the Redis scripts are checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Lane = Literal["generate", "train"]
# Generation is served before training on a worker; each lane takes turns on its own.
LANES: tuple[Lane, ...] = ("generate", "train")


@dataclass(frozen=True, order=True)
class Turn:
    """When a job starts in its lane: by round, then by arrival."""

    round: int
    arrival: int

    def encode(self) -> str:
        return f"{self.round}:{self.arrival}"

    @classmethod
    def decode(cls, text: str | bytes) -> Turn:
        raw = text.decode() if isinstance(text, bytes) else text
        round_text, arrival_text = raw.split(":")
        return cls(int(round_text), int(arrival_text))


# A job queued before turns were kept (or whose turn was dropped by a cancel):
# it runs first, among such jobs in arrival order, so nothing is left behind.
UNNUMBERED = Turn(0, -1)


def lane_of(function: str) -> Lane:
    """The lane of a job by its kind (arq function name)."""
    return "train" if function == "train" else "generate"


def in_turn_order(job_ids: Sequence[str], turns: Mapping[str, Turn]) -> list[str]:
    """`job_ids` (arrival order) sorted by turn; jobs without one go first, as they came."""
    return sorted(job_ids, key=lambda job_id: turns.get(job_id, UNNUMBERED))


def lanes_in_fair_order(
    job_ids: Sequence[str], turns: Mapping[str, Turn], is_training: Callable[[str], bool]
) -> list[str]:
    """The order a worker starts `job_ids` (arrival order): generation, then training.

    Each lane has turns of its own: a user's training run does not push their
    generation requests back.
    """
    generation = [job_id for job_id in job_ids if not is_training(job_id)]
    training = [job_id for job_id in job_ids if is_training(job_id)]
    return in_turn_order(generation, turns) + in_turn_order(training, turns)
