"""`SqliteOptOutRegistry`: the core's `OptOutRegistry` port (table `optout_images`).

Rows are only added, except that an erasure (/forgetme) hands a person's rows to an
anonymous id: the opt-out stays in force without saying whose it was.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import aiosqlite

from stylebot.bot.core.optout import OptedOutImage
from stylebot.storage.database import open_database

__all__ = ["SqliteOptOutRegistry"]


class SqliteOptOutRegistry:
    """On a connection of its own: its writes never need to commit with a repository's."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        return cls(await open_database(path))

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def add(self, image: OptedOutImage) -> bool:
        if image.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        async with self._lock:
            cursor = await self._db.execute(
                "INSERT INTO optout_images"
                " (platform, platform_user_id, sha256, phash, created_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, platform_user_id, sha256) DO NOTHING",
                (
                    image.platform,
                    image.platform_user_id,
                    image.sha256,
                    image.phash,
                    image.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
                ),
            )
            return cursor.rowcount == 1

    async def reassign(self, platform: str, platform_user_id: str, anonymous_id: str) -> int:
        async with self._lock:
            cursor = await self._db.execute(
                "UPDATE optout_images SET platform_user_id = ?"
                " WHERE platform = ? AND platform_user_id = ?",
                (anonymous_id, platform, platform_user_id),
            )
            return cursor.rowcount

    async def all(self) -> list[OptedOutImage]:
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT * FROM optout_images ORDER BY id")
        return [
            OptedOutImage(
                platform=row["platform"],
                platform_user_id=row["platform_user_id"],
                sha256=row["sha256"],
                phash=row["phash"],
                created_at=datetime.fromisoformat(row["created_at"]),
            )
            for row in rows
        ]
