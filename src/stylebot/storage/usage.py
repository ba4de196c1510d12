"""`SqliteUsageLog`: the core's `UsageLog` port (table `usage_events`), for quotas and
rate limits. On its own connection: its writes never need to commit with a repository's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import aiosqlite

from stylebot.storage.database import open_database

__all__ = ["SqliteUsageLog"]


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteUsageLog:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        return cls(await open_database(path))

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def record(
        self, kind: str, user_key: str, scope: str | None, amount: int, at: datetime
    ) -> None:
        async with self._lock:
            await self._db.execute(
                "INSERT INTO usage_events (kind, user_key, scope, amount, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, user_key, scope, amount, _utc_text(at)),
            )

    async def total(
        self, kind: str, since: datetime, *, user_key: str | None = None, scope: str | None = None
    ) -> int:
        if (user_key is None) == (scope is None):
            raise ValueError("give exactly one of user_key and scope")
        column, value = ("user_key", user_key) if user_key is not None else ("scope", scope)
        async with self._lock:
            rows = await self._db.execute_fetchall(
                f"SELECT COALESCE(SUM(amount), 0) FROM usage_events"
                f" WHERE kind = ? AND {column} = ? AND at >= ?",
                (kind, value, _utc_text(since)),
            )
        return int(next(iter(rows))[0])

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT at FROM usage_events WHERE user_key = ? AND at >= ? ORDER BY at, id",
                (user_key, _utc_text(since)),
            )
        return [datetime.fromisoformat(row[0]) for row in rows]

    async def forget(self, user_key: str) -> int:
        async with self._lock:
            cursor = await self._db.execute(
                "DELETE FROM usage_events WHERE user_key = ?", (user_key,)
            )
            return cursor.rowcount
