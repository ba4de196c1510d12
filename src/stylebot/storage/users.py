"""`SqliteUserStore`: the core's `UserStore` port (table `users`), on the shared session."""

from __future__ import annotations

import sqlite3

from stylebot.bot.core.errors import RecordNotFound, RepositoryError
from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import User
from stylebot.storage.session import SqliteStore, from_row, utc_time


class SqliteUserStore(SqliteStore):
    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str
    ) -> User:
        # Every command asks this; nearly always the user is known under the same name,
        # and one read answers without taking the write lock (issue 19's overhead).
        known = await self.find_user(platform, platform_user_id)
        if known is not None and known.display_name == display_name:
            return known
        async with self._session.transaction():
            await self._session.write(
                "INSERT INTO users (platform, platform_user_id, display_name, created_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (platform, platform_user_id) DO UPDATE"
                " SET display_name = excluded.display_name"
                " WHERE display_name != excluded.display_name",
                (platform, platform_user_id, display_name, utc_text(self._session.now())),
            )
            row = await self._session.fetch_row(
                "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
                (platform, platform_user_id),
            )
        assert row is not None
        return _user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._session.fetch_row("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row is not None else None

    async def find_user(self, platform: str, platform_user_id: str) -> User | None:
        row = await self._session.fetch_row(
            "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )
        return _user(row) if row is not None else None

    async def erase_user(self, user_id: int) -> list[str]:
        async with self._session.transaction():
            if (
                await self._session.fetch_row("SELECT 1 FROM users WHERE id = ?", (user_id,))
                is None
            ):
                raise RecordNotFound(f"user {user_id} does not exist")
            if await self._session.fetch_row("SELECT 1 FROM styles WHERE owner_id = ?", (user_id,)):
                raise RepositoryError(
                    f"user {user_id} still owns styles: delete them before erasing the user"
                )
            rows = await self._session.fetch_rows(
                "SELECT blob_key FROM uploads WHERE user_id = ?"
                " UNION SELECT blob_key FROM outputs WHERE user_id = ? AND blob_key IS NOT NULL"
                " UNION SELECT source_key FROM outputs"
                " WHERE user_id = ? AND source_key IS NOT NULL"
                " UNION SELECT mask_key FROM outputs"
                " WHERE user_id = ? AND mask_key IS NOT NULL",
                (user_id, user_id, user_id, user_id),
            )
            # Children first: outputs name jobs, jobs and uploads name the user.
            await self._session.write("DELETE FROM outputs WHERE user_id = ?", (user_id,))
            await self._session.write("DELETE FROM uploads WHERE user_id = ?", (user_id,))
            await self._session.write("DELETE FROM consents WHERE user_id = ?", (user_id,))
            await self._session.write("DELETE FROM jobs WHERE user_id = ?", (user_id,))
            await self._session.write("DELETE FROM users WHERE id = ?", (user_id,))
        return sorted({row[0] for row in rows})


def _user(row: sqlite3.Row) -> User:
    return from_row(User, row, created_at=utc_time(row["created_at"]))
