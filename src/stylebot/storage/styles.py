"""`SqliteStyleStore`: the core's `StyleStore` port (table `styles`), on the shared session."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from stylebot.bot.core.errors import DuplicateStyleName, RecordNotFound
from stylebot.bot.core.model import Style, StyleStatus, Visibility
from stylebot.queue.payloads import ValidationPoint
from stylebot.storage.session import SqliteStore, from_row, integrity_error, utc_text, utc_time

__all__ = ["SqliteStyleStore"]


class SqliteStyleStore(SqliteStore):
    async def add_style(
        self,
        owner_id: int,
        name: str,
        trigger: str,
        consent_id: int,
        base_model: str,
        train_settings: dict[str, object],
        upload_ids: Sequence[int],
        created_at: datetime,
    ) -> Style:
        settings = json.dumps(train_settings, sort_keys=True)
        created = utc_text(created_at)
        wanted = sorted(set(upload_ids))
        async with self._session.transaction():
            consent = await self._session.fetch_row(
                "SELECT id FROM consents WHERE id = ? AND user_id = ? AND style_id IS NULL",
                (consent_id, owner_id),
            )
            if consent is None:
                raise RecordNotFound(f"user {owner_id} has no unused consent {consent_id}")
            if wanted:
                marks = ",".join("?" * len(wanted))
                rows = await self._session.fetch_rows(
                    f"SELECT id FROM uploads WHERE id IN ({marks})"
                    " AND user_id = ? AND style_id IS NULL",
                    (*wanted, owner_id),
                )
                missing = sorted(set(wanted) - {row["id"] for row in rows})
                if missing:
                    raise RecordNotFound(
                        f"uploads {missing} are not pending uploads of user {owner_id}"
                    )
            try:
                cursor = await self._session.write(
                    "INSERT INTO styles (owner_id, name, trigger, visibility, status,"
                    " consent_id, base_model, train_settings, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        owner_id,
                        name,
                        trigger,
                        Visibility.PRIVATE.value,
                        StyleStatus.TRAINING.value,
                        consent_id,
                        base_model,
                        settings,
                        created,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "styles.owner_id, styles.name" in str(exc):
                    raise DuplicateStyleName(owner_id, name) from exc
                raise integrity_error(exc, f"user {owner_id} does not exist") from exc
            style_id = cursor.lastrowid
            if wanted:
                await self._session.write(
                    f"UPDATE uploads SET style_id = ? WHERE id IN ({marks})",
                    (style_id, *wanted),
                )
            await self._session.write(
                "UPDATE consents SET style_id = ? WHERE id = ?", (style_id, consent_id)
            )
            row = await self._session.fetch_row("SELECT * FROM styles WHERE id = ?", (style_id,))
        assert row is not None
        return _style(row)

    async def get_style(self, style_id: int) -> Style | None:
        row = await self._session.fetch_row("SELECT * FROM styles WHERE id = ?", (style_id,))
        return _style(row) if row is not None else None

    async def find_style(self, owner_id: int, name: str) -> Style | None:
        row = await self._session.fetch_row(
            "SELECT * FROM styles WHERE owner_id = ? AND name = ?", (owner_id, name)
        )
        return _style(row) if row is not None else None

    async def styles_named(self, name: str) -> list[Style]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM styles WHERE name = ? ORDER BY id", (name,)
        )
        return [_style(row) for row in rows]

    async def candidate_styles(self, owner_id: int, scope: str | None) -> list[Style]:
        """The owner's styles, those shared to `scope`, and public ones, by id.

        A UNION of three indexed lookups rather than one OR, so that each arm
        uses its index; `shared_scope = NULL` matches nothing, as intended.
        """
        rows = await self._session.fetch_rows(
            "SELECT * FROM styles WHERE owner_id = ?"
            " UNION SELECT * FROM styles WHERE visibility = 'server' AND shared_scope = ?"
            " UNION SELECT * FROM styles WHERE visibility = 'public'"
            " ORDER BY id",
            (owner_id, scope),
        )
        return [_style(row) for row in rows]

    async def set_style_status(
        self, style_id: int, status: StyleStatus, lora_key: str | None = None
    ) -> None:
        """Set the status; `lora_key=None` keeps the stored key."""
        status = StyleStatus(status)
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET status = ?, lora_key = COALESCE(?, lora_key) WHERE id = ?",
                (status.value, lora_key, style_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def set_style_export(self, style_id: int, export_key: str) -> None:
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET export_key = ? WHERE id = ?", (export_key, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def set_style_embedding(self, style_id: int, embedding_key: str) -> None:
        """The style's textual-inversion embedding (blob key), loaded at generation."""
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET embedding_key = ? WHERE id = ?", (embedding_key, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def style_export_key(self, style_id: int) -> str | None:
        row = await self._session.fetch_row(
            "SELECT export_key FROM styles WHERE id = ?", (style_id,)
        )
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        export_key: str | None = row["export_key"]
        return export_key

    async def set_style_validation(self, style_id: int, curve: Sequence[ValidationPoint]) -> None:
        text = json.dumps([point.to_dict() for point in curve], sort_keys=True)
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET validation = ? WHERE id = ?", (text, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def style_validation(self, style_id: int) -> tuple[ValidationPoint, ...]:
        row = await self._session.fetch_row(
            "SELECT validation FROM styles WHERE id = ?", (style_id,)
        )
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        raw = json.loads(row["validation"]) if row["validation"] else []
        return tuple(ValidationPoint.from_dict(point) for point in raw)

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        visibility = Visibility(visibility)
        _check_scope(visibility, shared_scope)
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET visibility = ?, shared_scope = ? WHERE id = ?",
                (visibility.value, shared_scope, style_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def delete_style(self, style_id: int) -> list[str]:
        async with self._session.transaction():
            style = await self._session.fetch_row(
                "SELECT consent_id, lora_key, export_key, embedding_key FROM styles WHERE id = ?",
                (style_id,),
            )
            if style is None:
                raise RecordNotFound(f"style {style_id} does not exist")
            rows = await self._session.fetch_rows(
                "SELECT blob_key FROM uploads WHERE style_id = ?"
                " UNION SELECT blob_key FROM outputs WHERE style_id = ? AND blob_key IS NOT NULL"
                " UNION SELECT source_key FROM outputs"
                " WHERE style_id = ? AND source_key IS NOT NULL",
                (style_id, style_id, style_id),
            )
            keys = [row[0] for row in rows]
            if style["lora_key"] is not None:
                keys.append(style["lora_key"])
            if style["export_key"] is not None:
                keys.append(style["export_key"])
            if style["embedding_key"] is not None:
                keys.append(style["embedding_key"])
            await self._session.write("DELETE FROM outputs WHERE style_id = ?", (style_id,))
            await self._session.write("DELETE FROM uploads WHERE style_id = ?", (style_id,))
            await self._session.write(
                "UPDATE jobs SET style_id = NULL WHERE style_id = ?", (style_id,)
            )
            # styles and consents point at each other: untie, then delete both.
            await self._session.write(
                "UPDATE consents SET style_id = NULL WHERE style_id = ?", (style_id,)
            )
            await self._session.write("DELETE FROM styles WHERE id = ?", (style_id,))
            await self._session.write("DELETE FROM consents WHERE id = ?", (style["consent_id"],))
        return sorted(set(keys))


def _check_scope(visibility: Visibility, shared_scope: str | None) -> None:
    if (visibility is Visibility.SERVER) != (shared_scope is not None):
        raise ValueError(
            "a server-shared style needs a shared_scope, and only a server-shared style has one"
        )


def _style(row: sqlite3.Row) -> Style:
    return from_row(
        Style,
        row,
        visibility=Visibility(row["visibility"]),
        status=StyleStatus(row["status"]),
        created_at=utc_time(row["created_at"]),
        train_settings=json.loads(row["train_settings"]),
    )
