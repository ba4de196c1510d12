"""`SqliteStyleStore`: the core's `StyleStore` port (table `styles`), on the shared session."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from stylebot.bot.core.errors import DuplicateStyleName, RecordNotFound
from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import NewStyle, Style, StyleStatus, Visibility
from stylebot.queue.payloads import StyleMetrics, TrainedBase, ValidationPoint
from stylebot.storage.session import SqliteStore, from_row, integrity_error, utc_time


class SqliteStyleStore(SqliteStore):
    async def add_style(self, new: NewStyle) -> Style:
        owner_id, consent_id = new.owner_id, new.consent_id
        settings = json.dumps(new.train_settings, sort_keys=True)
        created = utc_text(new.created_at)
        wanted = sorted(set(new.upload_ids))
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
                        new.name,
                        new.trigger,
                        Visibility.PRIVATE.value,
                        StyleStatus.TRAINING.value,
                        consent_id,
                        new.base_model,
                        settings,
                        created,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "styles.owner_id, styles.name" in str(exc):
                    raise DuplicateStyleName(owner_id, new.name) from exc
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
        await self._update(
            style_id, "status = ?, lora_key = COALESCE(?, lora_key)", status.value, lora_key
        )

    async def set_style_export(self, style_id: int, export_key: str) -> None:
        await self._update(style_id, "export_key = ?", export_key)

    async def set_style_embedding(self, style_id: int, embedding_key: str) -> None:
        """The style's textual-inversion embedding (blob key), loaded at generation."""
        await self._update(style_id, "embedding_key = ?", embedding_key)

    async def style_export_key(self, style_id: int) -> str | None:
        export_key: str | None = await self._column(style_id, "export_key")
        return export_key

    async def set_style_validation(self, style_id: int, curve: Sequence[ValidationPoint]) -> None:
        text = json.dumps([point.to_dict() for point in curve], sort_keys=True)
        await self._update(style_id, "validation = ?", text)

    async def style_validation(self, style_id: int) -> tuple[ValidationPoint, ...]:
        text = await self._column(style_id, "validation")
        return tuple(ValidationPoint.from_dict(point) for point in json.loads(text or "[]"))

    async def set_style_metrics(self, style_id: int, metrics: StyleMetrics) -> None:
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE styles SET metrics = ? WHERE id = ?", (metrics.to_json(), style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def set_style_base(self, style_id: int, base: TrainedBase) -> None:
        await self._update(
            style_id,
            "base_model_variant = ?, base_model_sha256 = ?, base_model_licence = ?,"
            " base_model_licence_url = ?",
            base.variant,
            base.sha256,
            base.licence,
            base.licence_url,
        )

    async def style_metrics(self, style_id: int) -> StyleMetrics | None:
        row = await self._session.fetch_row("SELECT metrics FROM styles WHERE id = ?", (style_id,))
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        return StyleMetrics.from_json(row["metrics"]) if row["metrics"] else None

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        visibility = Visibility(visibility)
        _check_scope(visibility, shared_scope)
        await self._update(
            style_id, "visibility = ?, shared_scope = ?", visibility.value, shared_scope
        )

    async def _update(self, style_id: int, assignments: str, *values: object) -> None:
        await self._update_row("styles", style_id, assignments, *values)

    async def _column(self, style_id: int, column: str) -> Any:
        row = await self._session.fetch_row(
            f"SELECT {column} FROM styles WHERE id = ?", (style_id,)
        )
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        return row[column]

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
                " WHERE style_id = ? AND source_key IS NOT NULL"
                " UNION SELECT mask_key FROM outputs"
                " WHERE style_id = ? AND mask_key IS NOT NULL",
                (style_id, style_id, style_id, style_id),
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
