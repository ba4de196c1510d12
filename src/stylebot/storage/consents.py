"""`SqliteConsentStore`: the core's `ConsentStore` port (table `consents`), on a shared session."""

from __future__ import annotations

import json
import sqlite3

from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import Consent, NewConsent
from stylebot.storage.session import SqliteStore, from_row, integrity_error, utc_time


class SqliteConsentStore(SqliteStore):
    async def add_consent(self, new: NewConsent) -> Consent:
        hashes = json.dumps(list(new.image_hashes))
        async with self._session.transaction():
            try:
                cursor = await self._session.write(
                    "INSERT INTO consents (user_id, licence, terms_version, rights_confirmed,"
                    " image_hashes, created_at, captions_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        new.user_id,
                        new.licence,
                        new.terms_version,
                        int(bool(new.rights_confirmed)),
                        hashes,
                        utc_text(new.created_at),
                        new.captions_sha256,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise integrity_error(exc, f"user {new.user_id} does not exist") from exc
            row = await self._session.fetch_row(
                "SELECT * FROM consents WHERE id = ?", (cursor.lastrowid,)
            )
        assert row is not None
        return _consent(row)

    async def latest_consent(self, user_id: int) -> Consent | None:
        row = await self._session.fetch_row(
            "SELECT * FROM consents WHERE user_id = ? AND style_id IS NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (user_id,),
        )
        return _consent(row) if row is not None else None


def _consent(row: sqlite3.Row) -> Consent:
    return from_row(
        Consent,
        row,
        rights_confirmed=bool(row["rights_confirmed"]),
        image_hashes=tuple(json.loads(row["image_hashes"])),
        created_at=utc_time(row["created_at"]),
    )
