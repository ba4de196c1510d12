"""Fair turns (stylebot.queue.fairness) in plain Python: the model the Redis scripts of
stylebot.queue.turns are checked against, and the fake queue's order."""

from __future__ import annotations

from dataclasses import dataclass, field

from stylebot.queue.fairness import Turn


def owner_key(owner: str | None, job_id: str) -> str:
    """Whose turns a job takes; a job without an owner is an owner of its own."""
    return owner if owner is not None else f"(no owner):{job_id}"


def next_round(owner_next_round: int, current_round: int) -> int:
    """The round of an owner's new job: never behind the current round (no banked turns)."""
    return max(owner_next_round, current_round)


@dataclass
class LaneTurns:
    """One lane's turns in memory: what `stylebot.queue.turns` keeps in Redis, by the
    rule of `stylebot.queue.fairness`, for unit tests and the fake queue."""

    current_round: int = 0
    owner_next_round: dict[str, int] = field(default_factory=dict)
    turns: dict[str, Turn] = field(default_factory=dict)
    arrivals: int = 0

    def give(self, job_id: str, owner: str | None) -> Turn:
        """The job's turn; a job that has one keeps it."""
        if job_id in self.turns:
            return self.turns[job_id]
        who = owner_key(owner, job_id)
        round_ = next_round(self.owner_next_round.get(who, 0), self.current_round)
        self.owner_next_round[who] = round_ + 1
        self.arrivals += 1
        turn = self.turns[job_id] = Turn(round_, self.arrivals)
        return turn

    def started(self, job_id: str) -> None:
        """A worker started the job: its round is now the current one (never going back)."""
        turn = self.turns.get(job_id)
        if turn is not None:
            self.current_round = max(self.current_round, turn.round)

    def remove(self, job_id: str) -> None:
        """The job finished or was cancelled: it leaves the order."""
        self.turns.pop(job_id, None)

    def order(self) -> list[str]:
        return sorted(self.turns, key=lambda job_id: self.turns[job_id])
