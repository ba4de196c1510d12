"""In-memory `AdminStore` and `TrainingSwitch` for the admin handlers' unit tests.

`tests/integration/ops/test_admin_store.py` runs one contract suite against
this fake and the SQLite store, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from stylebot.bot.core.admin_ports import Ban, LiveWorker, Quota


class FakeAdminStore:
    def __init__(self) -> None:
        self.bans: dict[tuple[str, str], Ban] = {}
        self.quota_table: dict[tuple[str, str], Quota] = {}
        self.log: list[tuple[datetime, str, str, str]] = []

    async def ban(
        self, platform: str, platform_user_id: str, reason: str, banned_by: str, at: datetime
    ) -> None:
        self.bans[platform, platform_user_id] = Ban(
            platform, platform_user_id, reason, banned_by, at
        )

    async def unban(self, platform: str, platform_user_id: str) -> bool:
        return self.bans.pop((platform, platform_user_id), None) is not None

    async def ban_of(self, platform: str, platform_user_id: str) -> Ban | None:
        return self.bans.get((platform, platform_user_id))

    async def set_quota(
        self, scope: str, kind: str, per_day: int | None, set_by: str, at: datetime
    ) -> None:
        if per_day is None:
            self.quota_table.pop((scope, kind), None)
        else:
            self.quota_table[scope, kind] = Quota(scope, kind, per_day, set_by, at)

    async def quotas(self, scopes: Sequence[str], kind: str) -> list[Quota]:
        return sorted(
            (q for (scope, k), q in self.quota_table.items() if k == kind and scope in scopes),
            key=lambda q: q.scope,
        )

    async def log_action(self, actor: str, action: str, detail: str, at: datetime) -> None:
        self.log.append((at, actor, action, detail))

    async def recent_actions(self, limit: int = 50) -> list[tuple[datetime, str, str, str]]:
        return list(reversed(self.log))[:limit]


class FakeTrainingSwitch:
    def __init__(self) -> None:
        self.paused: str | None = None

    async def pause(self, paused_by: str) -> None:
        self.paused = paused_by

    async def resume(self) -> None:
        self.paused = None

    async def paused_by(self) -> str | None:
        return self.paused


class FakeWorkerDirectory:
    """The core's `WorkerDirectory`: the workers a test says are alive."""

    def __init__(self, *workers: LiveWorker) -> None:
        self.workers = list(workers)

    async def live_workers(self) -> list[LiveWorker]:
        return list(self.workers)
