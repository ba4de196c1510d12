"""`SqliteUsageLog`: the core's `UsageLog` port (table `usage_events`), for quotas and
rate limits, on the unit of work's session (as `stylebot.storage.ledger` explains): an
erasure forgets a person's usage in the same transaction as the rest of their records.

Erasing must not reset anyone's limits, so an erased user's rows still inside the limits'
windows are kept under `erased:<HMAC of the user key>` (key in `usage_pseudonym_key`)
instead of their key; every query for a user also counts that code's rows. Older rows,
and coded rows once they age out, are deleted.
"""

from __future__ import annotations

from datetime import datetime

from stylebot.bot.core.ledger import utc_text
from stylebot.storage.pseudonyms import load_pseudonym_key, pseudonym
from stylebot.storage.session import SqliteSession, SqliteStore

ERASED_PREFIX = "erased:"


class SqliteUsageLog(SqliteStore):
    def __init__(self, session: SqliteSession) -> None:
        super().__init__(session)
        self._key: bytes | None = None  # the pseudonym key, read on first use

    async def _pseudonym(self, user_key: str) -> str:
        """The one-way code an erased user's recent rows are kept under."""
        if self._key is None:
            self._key = await load_pseudonym_key(self._session)
        return ERASED_PREFIX + pseudonym(self._key, "", user_key)

    async def record(
        self, kind: str, user_key: str, scope: str | None, amount: int, at: datetime
    ) -> None:
        async with self._session.transaction():
            await self._session.write(
                "INSERT INTO usage_events (kind, user_key, scope, amount, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, user_key, scope, amount, utc_text(at)),
            )

    async def total(
        self, kind: str, since: datetime, *, user_key: str | None = None, scope: str | None = None
    ) -> int:
        if (user_key is None) == (scope is None):
            raise ValueError("give exactly one of user_key and scope")
        if user_key is not None:
            rows = await self._session.fetch_rows(
                "SELECT COALESCE(SUM(amount), 0) FROM usage_events"
                " WHERE kind = ? AND user_key IN (?, ?) AND at >= ?",
                (kind, user_key, await self._pseudonym(user_key), utc_text(since)),
            )
        else:
            rows = await self._session.fetch_rows(
                "SELECT COALESCE(SUM(amount), 0) FROM usage_events"
                " WHERE kind = ? AND scope = ? AND at >= ?",
                (kind, scope, utc_text(since)),
            )
        return int(rows[0][0])

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        rows = await self._session.fetch_rows(
            "SELECT at FROM usage_events WHERE user_key IN (?, ?) AND at >= ? ORDER BY at, id",
            (user_key, await self._pseudonym(user_key), utc_text(since)),
        )
        return [datetime.fromisoformat(row[0]) for row in rows]

    async def forget(self, user_key: str, keep_since: datetime) -> int:
        pseudonym = await self._pseudonym(user_key)
        cutoff = utc_text(keep_since)
        async with self._session.transaction():
            deleted = await self._session.changes(
                "DELETE FROM usage_events WHERE user_key = ? AND at < ?", (user_key, cutoff)
            )
            coded = await self._session.changes(
                "UPDATE usage_events SET user_key = ? WHERE user_key = ?", (pseudonym, user_key)
            )
            # Anyone's coded rows that have aged out count for nothing any more.
            await self._session.write(
                "DELETE FROM usage_events WHERE user_key LIKE ? AND at < ?",
                (ERASED_PREFIX + "%", cutoff),
            )
        return deleted + coded
