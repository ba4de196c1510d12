"""Admin state: the core's `AdminStore` port on SQLite, and its `TrainingSwitch` on Redis.

Bans, quotas and the admin log are records, so they live in the front end's
database (migration 0002_admin), on a connection of their own (the opt-out
registry and usage log do the same; the consent ledger shares the unit of work's):
each write is one short transaction, never inside the unit of work's.

The training pause is a Redis key instead, because the workers honour it and
workers never open the database. It has no expiry: a pause lasts until an
operator resumes, across restarts of everything (Redis persists it).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite
from redis.asyncio import Redis

from stylebot.bot.core.admin_ports import AdminPorts, Ban, Quota, parse_operators
from stylebot.bot.core.ledger import utc_text
from stylebot.config import Settings
from stylebot.queue.training_switch import RedisTrainingSwitch
from stylebot.queue.worker_announcement import RedisWorkerDirectory
from stylebot.storage.database import open_database
from stylebot.storage.full import storage_full_as_error
from stylebot.storage.session import from_row


class SqliteAdminStore:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (and migrate) the database file at `path` on a connection of its own."""
        return cls(await open_database(path))

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        # SQLITE_FULL is StorageFull, as in the repository: the admin gets the plain reply.
        with storage_full_as_error("the admin store"):
            return await self._write_locked(sql, params)

    async def _write_locked(self, sql: str, params: Sequence[Any]) -> int:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await self._db.execute(sql, params)
                changed = cursor.rowcount
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
        return changed

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))

    async def ban(
        self, platform: str, platform_user_id: str, reason: str, banned_by: str, at: datetime
    ) -> None:
        await self._write(
            "INSERT INTO bans (platform, platform_user_id, reason, banned_by, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, platform_user_id) DO UPDATE SET"
            " reason = excluded.reason, banned_by = excluded.banned_by,"
            " created_at = excluded.created_at",
            (platform, platform_user_id, reason, banned_by, utc_text(at)),
        )

    async def unban(self, platform: str, platform_user_id: str) -> bool:
        removed = await self._write(
            "DELETE FROM bans WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )
        return removed > 0

    async def ban_of(self, platform: str, platform_user_id: str) -> Ban | None:
        rows = await self._rows(
            "SELECT * FROM bans WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )
        if not rows:
            return None
        return from_row(Ban, rows[0], created_at=datetime.fromisoformat(rows[0]["created_at"]))

    async def set_quota(
        self, scope: str, kind: str, per_day: int | None, set_by: str, at: datetime
    ) -> None:
        if per_day is None:
            await self._write("DELETE FROM quotas WHERE scope = ? AND kind = ?", (scope, kind))
            return
        await self._write(
            "INSERT INTO quotas (scope, kind, per_day, set_by, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (scope, kind) DO UPDATE SET"
            " per_day = excluded.per_day, set_by = excluded.set_by,"
            " updated_at = excluded.updated_at",
            (scope, kind, per_day, set_by, utc_text(at)),
        )

    async def quotas(self, scopes: Sequence[str], kind: str) -> list[Quota]:
        if not scopes:
            return []
        marks = ", ".join("?" for _ in scopes)
        rows = await self._rows(
            f"SELECT * FROM quotas WHERE kind = ? AND scope IN ({marks}) ORDER BY scope",
            (kind, *scopes),
        )
        return [
            from_row(Quota, row, updated_at=datetime.fromisoformat(row["updated_at"]))
            for row in rows
        ]

    async def log_action(self, actor: str, action: str, detail: str, at: datetime) -> None:
        await self._write(
            "INSERT INTO admin_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (utc_text(at), actor, action, detail),
        )

    async def recent_actions(self, limit: int = 50) -> list[tuple[datetime, str, str, str]]:
        """(when, who, action, detail), newest first."""
        rows = await self._rows(
            "SELECT at, actor, action, detail FROM admin_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [
            (datetime.fromisoformat(row["at"]), row["actor"], row["action"], row["detail"])
            for row in rows
        ]


def operators_from(settings: Settings) -> frozenset[str]:
    """The operators setting ("discord:123,telegram:456") as a set."""
    return parse_operators(settings.operators)


async def open_admin_ports(settings: Settings, redis: Redis) -> tuple[AdminPorts, SqliteAdminStore]:
    """The core's AdminPorts for a front end; close the returned store on the way out."""
    # Parsed first: a bad value must not leave an open connection (its thread would
    # keep the process alive after the error).
    operators = operators_from(settings)
    store = await SqliteAdminStore.open(settings.database_path)
    workers = RedisWorkerDirectory(redis)
    return AdminPorts(store, RedisTrainingSwitch(redis), workers, operators), store
