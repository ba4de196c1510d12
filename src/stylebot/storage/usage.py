"""`SqliteUsageLog`: the core's `UsageLog` port (table `usage_events`), for quotas and
rate limits, on the repository's connection (as `stylebot.storage.ledger` explains): an
erasure deletes a person's usage in the same transaction as the rest of their records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from stylebot.storage.repository import SqliteRepository

__all__ = ["SqliteUsageLog"]


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteUsageLog:
    def __init__(self, repo: SqliteRepository, *, owns_repo: bool = False) -> None:
        self._repo = repo
        self._owns_repo = owns_repo

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (and migrate) the database file at `path` on a connection of its own."""
        return cls(await SqliteRepository.open(path), owns_repo=True)

    async def close(self) -> None:
        """Close the connection if `open` made it; a shared repository is its owner's."""
        if self._owns_repo:
            await self._repo.close()

    async def record(
        self, kind: str, user_key: str, scope: str | None, amount: int, at: datetime
    ) -> None:
        async with self._repo.transaction():
            await self._repo.write_in_transaction(
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
        rows = await self._repo.fetch_rows(
            f"SELECT COALESCE(SUM(amount), 0) FROM usage_events"
            f" WHERE kind = ? AND {column} = ? AND at >= ?",
            (kind, value, _utc_text(since)),
        )
        return int(rows[0][0])

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        rows = await self._repo.fetch_rows(
            "SELECT at FROM usage_events WHERE user_key = ? AND at >= ? ORDER BY at, id",
            (user_key, _utc_text(since)),
        )
        return [datetime.fromisoformat(row[0]) for row in rows]

    async def forget(self, user_key: str) -> int:
        async with self._repo.transaction():
            return await self._repo.write_in_transaction(
                "DELETE FROM usage_events WHERE user_key = ?", (user_key,)
            )
