"""The admin rules' ports (bans, quotas and the admin log; the training switch) and
the operators' list; the rules themselves are `stylebot.bot.core.admin`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

# The scope of a quota that holds everywhere (set by the operator); server
# quotas use the Requester.scope of the server ("discord:1234").
GLOBAL_SCOPE = "*"


@dataclass(frozen=True)
class Ban:
    platform: str
    platform_user_id: str
    reason: str
    banned_by: str
    created_at: datetime


@dataclass(frozen=True)
class Quota:
    """At most `per_day` of `kind` (images to generate, or trainings) per member over a
    rolling day, within `scope`."""

    scope: str
    kind: str
    per_day: int
    set_by: str
    updated_at: datetime


class AdminStore(Protocol):
    """Bans, quotas and the admin log (SQLite on the front end; a fake in tests)."""

    async def ban(
        self, platform: str, platform_user_id: str, reason: str, banned_by: str, at: datetime
    ) -> None:
        """Ban (or re-ban, with the new reason) a user of a platform."""
        ...

    async def unban(self, platform: str, platform_user_id: str) -> bool:
        """Lift a ban; False when there was none."""
        ...

    async def ban_of(self, platform: str, platform_user_id: str) -> Ban | None: ...

    async def set_quota(
        self, scope: str, kind: str, per_day: int | None, set_by: str, at: datetime
    ) -> None:
        """Set a scope's quota for a kind of job; None removes it."""
        ...

    async def quotas(self, scopes: Sequence[str], kind: str) -> list[Quota]:
        """The quotas set for `kind` in any of `scopes`."""
        ...

    async def log_action(self, actor: str, action: str, detail: str, at: datetime) -> None: ...


class TrainingSwitch(Protocol):
    """The flag workers read before taking a training job."""

    async def pause(self, paused_by: str) -> None: ...

    async def resume(self) -> None: ...

    async def paused_by(self) -> str | None:
        """Who paused training, or None while it runs."""
        ...


@dataclass(frozen=True)
class LiveWorker:
    """A worker that announced itself and whose heartbeat is current."""

    worker_id: str
    host: str
    # "cpu", "mps", or the GPU's name; its memory when it is a GPU.
    device: str
    gpu_memory_bytes: int | None
    family: str
    base_model: str
    version: str
    started_at: datetime
    # The jobs it runs now.
    jobs: tuple[str, ...]
    # Stopping (SIGTERM): it finishes or hands back its jobs and takes no new ones.
    draining: bool


class WorkerDirectory(Protocol):
    """The workers alive now (announced in Redis, forgotten when their heartbeat stops)."""

    async def live_workers(self) -> list[LiveWorker]: ...


@dataclass(frozen=True)
class AdminPorts:
    store: AdminStore
    training: TrainingSwitch
    workers: WorkerDirectory
    # "platform:user_id" of each operator (see parse_operators).
    operators: frozenset[str] = frozenset()


def parse_operators(text: str) -> frozenset[str]:
    """`"discord:123, telegram:456"` → {"discord:123", "telegram:456"}; blanks ignored."""
    operators = set()
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        platform, sep, user_id = item.partition(":")
        if not sep or not platform or not user_id:
            raise ValueError(f"operator {item!r} should be platform:user_id, e.g. discord:1234")
        operators.add(f"{platform.strip().lower()}:{user_id.strip()}")
    return frozenset(operators)
