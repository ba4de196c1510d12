"""`SqliteConsentLedger`: the core's `ConsentLedger` port, on the unit of work's session.

An entry must commit with the records it speaks for (a consent with its consent entry, a
style's deletion with its revocation entry), so the ledger writes through the session
the unit of work shares (stylebot.storage.unit_of_work): an append inside the core's
`async with uow:` is a savepoint of that transaction and commits or rolls back with it;
an append outside one is a transaction of its own. The transactions are
``BEGIN IMMEDIATE``, so reading the head and inserting the next entry happen under
SQLite's write lock: two processes appending at once queue on it and can never chain
two entries to one head.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind, canonical_json, chain_entry
from stylebot.storage.session import SqliteStore


class SqliteConsentLedger(SqliteStore):
    async def append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        async with self._session.transaction():
            rows = await self._session.fetch_rows(
                "SELECT * FROM consent_ledger ORDER BY seq DESC LIMIT 1"
            )
            head = _entry(rows[0]) if rows else None
            entry = chain_entry(head, kind, payload, recorded_at)
            await self._session.write(
                "INSERT INTO consent_ledger"
                " (seq, kind, recorded_at, payload, prev_hash, entry_hash)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.kind,
                    entry.recorded_at.isoformat(timespec="microseconds"),
                    canonical_json(entry.payload),
                    entry.prev_hash,
                    entry.entry_hash,
                ),
            )
        return entry

    async def entries(self) -> list[LedgerEntry]:
        rows = await self._session.fetch_rows("SELECT * FROM consent_ledger ORDER BY seq")
        return [_entry(row) for row in rows]


def _entry(row: sqlite3.Row) -> LedgerEntry:
    # A row someone damaged by hand must still load, so that verify can report it:
    # unreadable JSON becomes a payload that cannot match its hash.
    try:
        payload = json.loads(row["payload"])
    except (TypeError, ValueError):
        payload = {"unreadable": str(row["payload"])}
    if not isinstance(payload, dict):
        payload = {"not_an_object": payload}
    try:
        recorded_at = datetime.fromisoformat(row["recorded_at"])
    except (TypeError, ValueError):
        recorded_at = datetime.fromtimestamp(0).astimezone()
        payload = {"unreadable_time": str(row["recorded_at"]), **payload}
    return LedgerEntry(
        seq=int(row["seq"]),
        kind=str(row["kind"]),
        recorded_at=recorded_at,
        payload=payload,
        prev_hash=str(row["prev_hash"]),
        entry_hash=str(row["entry_hash"]),
    )
