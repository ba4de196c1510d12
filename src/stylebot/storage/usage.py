"""`SqliteUsageLog`: the core's `UsageLog` port (table `usage_events`), for quotas and
rate limits, on the repository's connection (as `stylebot.storage.ledger` explains): an
erasure forgets a person's usage in the same transaction as the rest of their records.

Erasing must not reset anyone's limits, so an erased user's rows still inside the limits'
windows are kept under `erased:<HMAC of the user key>` (key in `usage_pseudonym_key`)
instead of their key; every query for a user also counts that code's rows. Older rows,
and coded rows once they age out, are deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from stylebot.storage.pseudonyms import load_pseudonym_key, pseudonym
from stylebot.storage.repository import SqliteRepository

__all__ = ["SqliteUsageLog"]


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


ERASED_PREFIX = "erased:"


class SqliteUsageLog:
    def __init__(self, repo: SqliteRepository, *, owns_repo: bool = False) -> None:
        self._repo = repo
        self._owns_repo = owns_repo
        self._key: bytes | None = None

    async def _pseudonym(self, user_key: str) -> str:
        """The one-way code an erased user's recent rows are kept under."""
        if self._key is None:
            self._key = await load_pseudonym_key(self._repo)
        return ERASED_PREFIX + pseudonym(self._key, "", user_key)

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
        if user_key is not None:
            rows = await self._repo.fetch_rows(
                "SELECT COALESCE(SUM(amount), 0) FROM usage_events"
                " WHERE kind = ? AND user_key IN (?, ?) AND at >= ?",
                (kind, user_key, await self._pseudonym(user_key), _utc_text(since)),
            )
        else:
            rows = await self._repo.fetch_rows(
                "SELECT COALESCE(SUM(amount), 0) FROM usage_events"
                " WHERE kind = ? AND scope = ? AND at >= ?",
                (kind, scope, _utc_text(since)),
            )
        return int(rows[0][0])

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        rows = await self._repo.fetch_rows(
            "SELECT at FROM usage_events WHERE user_key IN (?, ?) AND at >= ? ORDER BY at, id",
            (user_key, await self._pseudonym(user_key), _utc_text(since)),
        )
        return [datetime.fromisoformat(row[0]) for row in rows]

    async def forget(self, user_key: str, keep_since: datetime) -> int:
        pseudonym = await self._pseudonym(user_key)
        cutoff = _utc_text(keep_since)
        async with self._repo.transaction():
            deleted = await self._repo.write_in_transaction(
                "DELETE FROM usage_events WHERE user_key = ? AND at < ?", (user_key, cutoff)
            )
            coded = await self._repo.write_in_transaction(
                "UPDATE usage_events SET user_key = ? WHERE user_key = ?", (pseudonym, user_key)
            )
            # Anyone's coded rows that have aged out count for nothing any more.
            await self._repo.write_in_transaction(
                "DELETE FROM usage_events WHERE user_key LIKE ? AND at < ?",
                (ERASED_PREFIX + "%", cutoff),
            )
        return deleted + coded
