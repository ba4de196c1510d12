"""`SqliteUnitOfWork`: the core's `UnitOfWork` on one SQLite connection.

Every store it hands out writes through the same `SqliteSession`, so `async with uow:`
is one SQLite transaction (BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception)
over all of them: a consent and its ledger entry, an erasure and everything it removes.
The admin store keeps a connection of its own (stylebot.storage.admin).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Self

import aiosqlite

from stylebot.bot.core.stores import UnitOfWork
from stylebot.storage.consents import SqliteConsentStore
from stylebot.storage.database import open_database
from stylebot.storage.jobs import SqliteJobStore
from stylebot.storage.ledger import SqliteConsentLedger
from stylebot.storage.optout import SqliteOptOutRegistry
from stylebot.storage.outputs import SqliteOutputStore
from stylebot.storage.queue_cleanups import SqlitePendingQueueCleanups
from stylebot.storage.session import SqliteSession, utc_now
from stylebot.storage.styles import SqliteStyleStore
from stylebot.storage.uploads import SqliteUploadStore
from stylebot.storage.usage import SqliteUsageLog
from stylebot.storage.users import SqliteUserStore

log = logging.getLogger(__name__)


class SqliteUnitOfWork(UnitOfWork):
    """Build with `await SqliteUnitOfWork.open(path)`; `now` stamps the records whose
    store methods take no time (users and uploads), tests pass a fixed clock."""

    def __init__(
        self, connection: aiosqlite.Connection, *, now: Callable[[], datetime] = utc_now
    ) -> None:
        super().__init__()
        self.session = SqliteSession(connection, now=now)
        self.users = SqliteUserStore(self.session)
        self.uploads = SqliteUploadStore(self.session)
        self.consents = SqliteConsentStore(self.session)
        self.styles = SqliteStyleStore(self.session)
        self.jobs = SqliteJobStore(self.session)
        self.outputs = SqliteOutputStore(self.session)
        self.ledger = SqliteConsentLedger(self.session)
        self.optouts = SqliteOptOutRegistry(self.session)
        self.usage = SqliteUsageLog(self.session)
        self.cleanups = SqlitePendingQueueCleanups(self.session)

    @classmethod
    async def open(cls, path: Path, *, now: Callable[[], datetime] = utc_now) -> Self:
        """Open (and migrate) the database file at `path`."""
        return cls(await open_database(path), now=now)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self.session.transaction()

    async def close(self) -> None:
        await self.session.close()

    async def unreferenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that no upload, style (LoRA, export, embedding) or output uses
        any more. Blobs are content-addressed, so two uploads of the same image (even by
        two users) share one blob: after `discard_pending_uploads`, only these keys are
        safe to delete."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        rows = await self.session.fetch_rows(
            f"WITH wanted(key) AS (VALUES {','.join('(?)' for _ in wanted)})"
            " SELECT key FROM wanted WHERE NOT EXISTS (SELECT 1 FROM uploads WHERE blob_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM styles WHERE lora_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM styles WHERE export_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM styles WHERE embedding_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM outputs WHERE blob_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM outputs WHERE source_key = key)"
            " AND NOT EXISTS (SELECT 1 FROM outputs WHERE mask_key = key)",
            wanted,
        )
        return {row[0] for row in rows}

    async def wipe_deleted(self) -> None:
        # secure_delete (open_database) zeroes deleted content in the pages, but the
        # write-ahead log keeps earlier copies of them until it is checkpointed and
        # emptied. TRUNCATE waits for readers (busy_timeout); a busy result is logged.
        rows = await self.session.fetch_rows("PRAGMA wal_checkpoint(TRUNCATE)")
        if rows and rows[0][0]:
            log.warning("the write-ahead log could not be emptied after a deletion (busy)")
