"""`SqliteConsentLedger`: the core's `ConsentLedger` port on its own SQLite connection.

Its own connection (to the same database file as the repository) keeps the ledger's
transactions apart from the repository's: an append is one short ``BEGIN IMMEDIATE``
transaction that reads the head and inserts the next entry, so two processes appending
at once queue on SQLite's write lock and can never chain two entries to one head. The
core appends after its repository writes, never inside a repository transaction (that
would wait on itself for the write lock).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind, canonical_json, chain_entry
from stylebot.storage.database import open_database

__all__ = ["SqliteConsentLedger"]


class SqliteConsentLedger:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (and migrate) the database file at `path` on a connection of its own."""
        return cls(await open_database(path))

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = await self._db.execute_fetchall(
                    "SELECT * FROM consent_ledger ORDER BY seq DESC LIMIT 1"
                )
                head = _entry(next(iter(rows))) if rows else None
                entry = chain_entry(head, kind, payload, recorded_at)
                await self._db.execute(
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
                await self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
        return entry

    async def entries(self) -> list[LedgerEntry]:
        async with self._lock:
            rows = await self._db.execute_fetchall("SELECT * FROM consent_ledger ORDER BY seq")
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
