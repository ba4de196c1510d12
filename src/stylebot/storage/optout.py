"""`SqliteOptOutRegistry`: the core's `OptOutRegistry` port (table `optout_images`, its
band index `optout_bands`), on the unit of work's session (as `stylebot.storage.ledger`
explains).

Lookups go through the band index (stylebot.bot.core.optout; a trigger of migration
0008 writes the bands), so an upload reads the few rows that may match, not the table.

Each row carries `registrant`, a one-way code of who registered it (key: see
stylebot.storage.pseudonyms). An erasure (/forgetme) hands a person's rows to an
anonymous id, in the same transaction as the rest of the erasure: the opt-out stays in
force without naming them, while the code keeps their caps and lets admins review all
of one registrant's rows together. Rows are removed only by an admin
(stylebot.bot.core.optout_review), each removal with a consent ledger entry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stylebot.bot.core.hash_bands import band_probes
from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.storage.band_index import ids_with_bands
from stylebot.storage.pseudonyms import load_pseudonym_key, pseudonym
from stylebot.storage.session import SqliteSession, SqliteStore, from_row

_PURPOSE = "optout-registrant"


class SqliteOptOutRegistry(SqliteStore):
    def __init__(self, session: SqliteSession) -> None:
        super().__init__(session)
        self._key: bytes | None = None  # the pseudonym key, read on first use

    async def _ready_key(self) -> bytes:
        """The code key; on first use, rows from before migration 0008 get their code."""
        if self._key is None:
            self._key = await load_pseudonym_key(self._session)
            await self._code_older_rows(self._key)
        return self._key

    async def _registrant(self, platform: str, platform_user_id: str) -> str:
        key = await self._ready_key()
        return pseudonym(key, _PURPOSE, f"{platform}:{platform_user_id}")

    async def _code_older_rows(self, key: bytes) -> None:
        """Rows from before migration 0008 get their code (of whoever they name now)."""
        rows = await self._session.fetch_rows(
            "SELECT id, platform, platform_user_id FROM optout_images WHERE registrant IS NULL"
        )
        if not rows:
            return
        async with self._session.transaction():
            for row in rows:
                code = pseudonym(key, _PURPOSE, f"{row['platform']}:{row['platform_user_id']}")
                await self._session.write(
                    "UPDATE optout_images SET registrant = ? WHERE id = ?", (code, row["id"])
                )

    async def add(self, image: OptedOutImage) -> bool:
        created_at = utc_text(image.created_at)
        registrant = await self._registrant(image.platform, image.platform_user_id)
        async with self._session.transaction():
            added = await self._session.changes(
                "INSERT INTO optout_images"
                " (platform, platform_user_id, sha256, phash, created_at, scope, registrant)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (platform, platform_user_id, sha256) DO NOTHING",
                (
                    image.platform,
                    image.platform_user_id,
                    image.sha256,
                    image.phash,
                    created_at,
                    image.scope,
                    registrant,
                ),
            )
        return added == 1

    async def candidates(
        self, sha256: str, phash: PerceptualHash, max_bits: int
    ) -> list[OptedOutImage]:
        probes = band_probes(phash, max_bits)
        params: list[Any] = [sha256]
        by_band = ""
        if probes:  # a flat hash is found by its SHA-256 only
            matching, band_params = ids_with_bands("optout_bands", "optout_id", probes)
            by_band = f" UNION {matching}"
            params.extend(band_params)
        return await self._images(
            "SELECT * FROM optout_images WHERE id IN"
            f" (SELECT id FROM optout_images WHERE sha256 = ?{by_band}) ORDER BY id",
            params,
        )

    async def count_registered_by(
        self, platform: str, platform_user_id: str, since: datetime | None = None
    ) -> int:
        registrant = await self._registrant(platform, platform_user_id)
        after = "" if since is None else " AND created_at >= ?"
        params: list[Any] = [registrant] + ([] if since is None else [utc_text(since)])
        rows = await self._session.fetch_rows(
            f"SELECT COUNT(*) FROM optout_images WHERE registrant = ?{after}", params
        )
        return int(rows[0][0])

    async def count_naming(self, platform: str, platform_user_id: str) -> int:
        rows = await self._session.fetch_rows(
            "SELECT COUNT(*) FROM optout_images WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )
        return int(rows[0][0])

    async def listing(
        self, within: str | None, registrant: str | None = None, limit: int = 50
    ) -> list[OptedOutImage]:
        where, params = self._where(within, (), registrant)
        return await self._images(
            f"SELECT * FROM optout_images{where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )

    async def remove(
        self, within: str | None, ids: Sequence[int] = (), registrant: str | None = None
    ) -> list[OptedOutImage]:
        if not ids and registrant is None:
            return []
        where, params = self._where(within, ids, registrant)
        async with self._session.transaction():
            # Read inside the transaction: what is returned is exactly what goes.
            doomed = await self._images(f"SELECT * FROM optout_images{where} ORDER BY id", params)
            for image in doomed:
                await self._session.write("DELETE FROM optout_images WHERE id = ?", (image.id,))
        return doomed

    async def reassign(self, platform: str, platform_user_id: str, anonymous_id: str) -> int:
        await self._ready_key()  # older rows coded before they stop naming the person
        async with self._session.transaction():
            return await self._session.changes(
                "UPDATE optout_images SET platform_user_id = ?"
                " WHERE platform = ? AND platform_user_id = ?",
                (anonymous_id, platform, platform_user_id),
            )

    async def all(self) -> list[OptedOutImage]:
        """Every registration (tests and maintenance; lookups use `candidates`)."""
        return await self._images("SELECT * FROM optout_images ORDER BY id", [])

    @staticmethod
    def _where(
        within: str | None, ids: Sequence[int], registrant: str | None
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if within is not None:
            clauses.append("scope = ?")
            params.append(within)
        if ids:
            clauses.append(f"id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        if registrant is not None:
            # A code or its start; the core lets only hex digits through (no wildcards).
            clauses.append("registrant LIKE ?")
            params.append(registrant + "%")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    async def _images(self, sql: str, params: Sequence[Any]) -> list[OptedOutImage]:
        await self._ready_key()  # older rows get their code before being shown
        return [_image(row) for row in await self._session.fetch_rows(sql, params)]


def _image(row: sqlite3.Row) -> OptedOutImage:
    return from_row(
        OptedOutImage,
        row,
        created_at=datetime.fromisoformat(row["created_at"]),
        registrant=row["registrant"] or "",
    )
