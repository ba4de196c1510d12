"""Which interaction answers which job: progress edits and results go there while it lives.

An interaction token lets the bot edit its response for 15 minutes. Jobs
outlive that (training) or the process (restarts), so this map is only a
shortcut: a job missing from it, or whose token is about to expire, has its
result posted to the channel instead (see :mod:`stylebot.bot.discord.adapter`).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass, field

import discord

#: Discord allows about five edits per 5 s per message; progress stays well below.
PROGRESS_EDIT_INTERVAL_S = 2.0
#: Stop using a token this long before Discord's 15 minutes are up: an upload of
#: several images can take seconds, and a half-sent result is a lost result.
TOKEN_SAFETY_MARGIN = datetime.timedelta(seconds=30)


@dataclass
class TrackedJob:
    """A queued job and the interaction whose original response shows it."""

    job_id: str
    interaction: discord.Interaction
    # Whether its response is ephemeral: a long result's follow-ups must be too.
    ephemeral: bool = False
    # Set once the "queued" answer is on screen, so a fast result never gets
    # overwritten by the slower "queued" edit.
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    last_edit: float = 0.0

    def token_usable(self, now: datetime.datetime | None = None) -> bool:
        now = now or discord.utils.utcnow()
        return now < self.interaction.expires_at - TOKEN_SAFETY_MARGIN

    def progress_due(
        self, interval_s: float = PROGRESS_EDIT_INTERVAL_S, now: float | None = None
    ) -> bool:
        """At most one progress edit per interval; the final result is never throttled."""
        now = time.monotonic() if now is None else now
        return now - self.last_edit >= interval_s

    def edited(self) -> None:
        self.last_edit = time.monotonic()


class JobInteractions:
    """job id -> the interaction showing it, for this process's lifetime."""

    def __init__(self) -> None:
        self._jobs: dict[str, TrackedJob] = {}

    def track(
        self, job_id: str, interaction: discord.Interaction, *, ephemeral: bool = False
    ) -> TrackedJob:
        self._forget_expired()
        tracked = TrackedJob(job_id, interaction, ephemeral)
        self._jobs[job_id] = tracked
        return tracked

    def get(self, job_id: str) -> TrackedJob | None:
        return self._jobs.get(job_id)

    def pop(self, job_id: str) -> TrackedJob | None:
        return self._jobs.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._jobs)

    def _forget_expired(self) -> None:
        """Cancelled jobs send no final event; drop entries whose token is dead anyway."""
        now = discord.utils.utcnow()
        for job_id in [j for j, t in self._jobs.items() if t.interaction.expires_at <= now]:
            del self._jobs[job_id]
