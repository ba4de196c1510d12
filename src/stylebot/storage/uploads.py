"""`SqliteUploadStore`: the core's `UploadStore` port (table `uploads`), on the shared session."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import Upload
from stylebot.storage.session import SqliteStore, from_row, integrity_error, utc_time


class SqliteUploadStore(SqliteStore):
    async def add_upload(
        self,
        user_id: int,
        blob_key: str,
        display_name: str,
        width: int,
        height: int,
        caption: str | None = None,
    ) -> Upload:
        created_at = utc_text(self._session.now())
        async with self._session.transaction():
            try:
                cursor = await self._session.write(
                    "INSERT INTO uploads"
                    " (user_id, blob_key, display_name, width, height, created_at, caption)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (user_id, blob_key, display_name, width, height, created_at, caption),
                )
            except sqlite3.IntegrityError as exc:
                raise integrity_error(exc, f"user {user_id} does not exist") from exc
            row = await self._session.fetch_row(
                "SELECT * FROM uploads WHERE id = ?", (cursor.lastrowid,)
            )
        assert row is not None
        return _upload(row)

    async def pending_uploads(self, user_id: int) -> list[Upload]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM uploads WHERE user_id = ? AND style_id IS NULL ORDER BY id",
            (user_id,),
        )
        return [_upload(row) for row in rows]

    async def set_pending_caption(
        self, user_id: int, upload_id: int, caption: str | None
    ) -> Upload | None:
        async with self._session.transaction():
            await self._session.write(
                "UPDATE uploads SET caption = ?, suggested_caption = NULL"
                " WHERE id = ? AND user_id = ? AND style_id IS NULL",
                (caption, upload_id, user_id),
            )
            row = await self._session.fetch_row(
                "SELECT * FROM uploads WHERE id = ? AND user_id = ? AND style_id IS NULL",
                (upload_id, user_id),
            )
        return _upload(row) if row is not None else None

    async def suggest_pending_captions(self, user_id: int, suggestions: Mapping[str, str]) -> int:
        changed = 0
        async with self._session.transaction():
            for blob_key, text in suggestions.items():
                cursor = await self._session.write(
                    "UPDATE uploads SET suggested_caption = ?"
                    " WHERE user_id = ? AND blob_key = ? AND style_id IS NULL",
                    (text, user_id, blob_key),
                )
                changed += cursor.rowcount
        return changed

    async def discard_pending_uploads(self, user_id: int) -> list[Upload]:
        """Delete the pending uploads and return them.

        The caller deletes blobs no longer referenced: a blob may be shared
        with another upload (same image twice), so this layer cannot know.
        """
        async with self._session.transaction():
            removed = await self.pending_uploads(user_id)
            await self._session.write(
                "DELETE FROM uploads WHERE user_id = ? AND style_id IS NULL", (user_id,)
            )
        return removed

    async def style_uploads(self, style_id: int) -> list[Upload]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM uploads WHERE style_id = ? ORDER BY id", (style_id,)
        )
        return [_upload(row) for row in rows]


def _upload(row: sqlite3.Row) -> Upload:
    return from_row(Upload, row, created_at=utc_time(row["created_at"]))
