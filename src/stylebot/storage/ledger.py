"""`SqliteConsentLedger`: the core's `ConsentLedger` port, on the repository's connection.

An entry must commit with the records it speaks for (a consent with its consent entry, a
style's deletion with its revocation entry), so the ledger writes through the
`SqliteRepository` it is built on: an append inside the core's `repo.transaction()` is a
savepoint of that transaction and commits or rolls back with it; an append outside one
is a transaction of its own. The repository's transactions are ``BEGIN IMMEDIATE``, so
reading the head and inserting the next entry happen under SQLite's write lock: two
processes appending at once queue on it and can never chain two entries to one head.

Build it on the repository the bot uses (``SqliteConsentLedger(repo)``). A ledger on a
connection of its own (``open(path)``, for `stylebot consent verify`) is for reading: an
append from it while the bot's repository holds a transaction would wait for that
transaction's write lock.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind, canonical_json, chain_entry
from stylebot.storage.repository import SqliteRepository

__all__ = ["SqliteConsentLedger"]


class SqliteConsentLedger:
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

    async def append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        async with self._repo.transaction():
            rows = await self._repo.fetch_rows(
                "SELECT * FROM consent_ledger ORDER BY seq DESC LIMIT 1"
            )
            head = _entry(rows[0]) if rows else None
            entry = chain_entry(head, kind, payload, recorded_at)
            await self._repo.write_in_transaction(
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
        rows = await self._repo.fetch_rows("SELECT * FROM consent_ledger ORDER BY seq")
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
