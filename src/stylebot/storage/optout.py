"""`SqliteOptOutRegistry`: the core's `OptOutRegistry` port (table `optout_images`), on
the repository's connection (as `stylebot.storage.ledger` explains).

Rows are only added, except that an erasure (/forgetme) hands a person's rows to an
anonymous id, in the same transaction as the rest of the erasure: the opt-out stays in
force without saying whose it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from stylebot.bot.core.optout import OptedOutImage
from stylebot.storage.repository import SqliteRepository

__all__ = ["SqliteOptOutRegistry"]


class SqliteOptOutRegistry:
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

    async def add(self, image: OptedOutImage) -> bool:
        if image.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        async with self._repo.transaction():
            added = await self._repo.write_in_transaction(
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
        return added == 1

    async def reassign(self, platform: str, platform_user_id: str, anonymous_id: str) -> int:
        async with self._repo.transaction():
            return await self._repo.write_in_transaction(
                "UPDATE optout_images SET platform_user_id = ?"
                " WHERE platform = ? AND platform_user_id = ?",
                (anonymous_id, platform, platform_user_id),
            )

    async def all(self) -> list[OptedOutImage]:
        rows = await self._repo.fetch_rows("SELECT * FROM optout_images ORDER BY id")
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
