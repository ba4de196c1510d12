"""`SqlitePendingQueueCleanups`: the core's `PendingQueueCleanups` port, on the unit
of work's session, so a clean-up recorded inside the core's transaction
commits or rolls back with the deletion it belongs to (as the consent ledger does)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.storage.session import SqliteStore


class SqlitePendingQueueCleanups(SqliteStore):
    async def add(self, cleanup: QueueCleanup, recorded_at: datetime) -> None:
        work = {
            "cancel": list(cleanup.cancel_job_ids),
            "forget": list(cleanup.forget_job_ids),
            "owner": cleanup.owner,
            "revoke": list(cleanup.revoke_blob_keys),
            "rewrite": cleanup.rewrite_files,
        }
        async with self._session.transaction():
            await self._session.write(
                "INSERT INTO pending_queue_cleanups (work, recorded_at) VALUES (?, ?)",
                (json.dumps(work), recorded_at.isoformat(timespec="microseconds")),
            )

    async def pending(self) -> list[tuple[int, QueueCleanup]]:
        rows = await self._session.fetch_rows(
            "SELECT id, work FROM pending_queue_cleanups ORDER BY id"
        )
        return [(int(row["id"]), _cleanup(json.loads(row["work"]))) for row in rows]

    async def done(self, cleanup_ids: Sequence[int]) -> None:
        if not cleanup_ids:
            return
        async with self._session.transaction():
            for cleanup_id in cleanup_ids:
                await self._session.write(
                    "DELETE FROM pending_queue_cleanups WHERE id = ?", (cleanup_id,)
                )


def _cleanup(work: dict[str, object]) -> QueueCleanup:
    def ids(name: str) -> tuple[str, ...]:
        value = work.get(name)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    owner = work.get("owner")
    return QueueCleanup(
        cancel_job_ids=ids("cancel"),
        forget_job_ids=ids("forget"),
        owner=str(owner) if owner is not None else None,
        revoke_blob_keys=ids("revoke"),
        rewrite_files=bool(work.get("rewrite")),
    )
