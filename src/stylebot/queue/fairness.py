"""The order in which queued jobs get the device: owners take turns.

Rule: a job's turn is how many jobs of the same owner are queued (or running)
ahead of it; jobs run by turn, and within a turn in arrival order. So one
user's ten requests go one at a time between everybody else's, and a user
with one request waits for at most one job of each other user.

The rule needs nothing but the queue itself (no state of its own), so every
worker on one Redis computes the same order, and the front end can compute
the same order to tell users their true position (`queue_positions`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def fair_order(jobs: Sequence[T], owner: Callable[[T], Hashable | None]) -> list[T]:
    """`jobs` (in arrival order, running ones included) in the order they get the device.

    Jobs whose owner is None are each their own owner.
    """
    seen: Counter[Hashable] = Counter()
    turns: list[tuple[int, int]] = []
    for index, job in enumerate(jobs):
        who = owner(job)
        key: Hashable = ("anonymous", index) if who is None else who
        turns.append((seen[key], index))
        seen[key] += 1
    return [jobs[index] for _turn, index in sorted(turns)]


def queue_positions(jobs: Sequence[T], owner: Callable[[T], Hashable | None]) -> dict[int, int]:
    """Position (1 = next) of each job by its index in `jobs`, as `fair_order` runs them.

    For the front end: pass the waiting jobs of one lane (generation, or
    training) in arrival order; generation is served before training on a
    worker, so the two lanes have positions of their own.
    """
    order = fair_order(list(range(len(jobs))), lambda index: owner(jobs[index]))
    return {index: position for position, index in enumerate(order, start=1)}
