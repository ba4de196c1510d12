"""`SqliteSession`: one aiosqlite connection and its transactions, which every SQLite
store of the front end shares (stylebot.storage.unit_of_work hands them out).

Transactions and coroutines: every coroutine of the front end shares one
connection, and SQLite transactions belong to the connection, not to a
coroutine. Without care, coroutine B's write would land inside coroutine A's
open transaction and vanish when A rolls back. So one `asyncio.Lock`
serialises transactions (and reads, so nobody sees another coroutine's
uncommitted rows), and a context variable remembers "this task is inside my
transaction" so that the core can call writing methods inside
`transaction()` without deadlocking: nested use becomes a SAVEPOINT.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import aiosqlite

from stylebot.bot.core.errors import DuplicateRecord, RecordNotFound, RepositoryError
from stylebot.storage.database import StorageError
from stylebot.storage.full import storage_full_as_error

R = TypeVar("R")
_SQLITE_INT_MIN = -(2**63)
_SQLITE_INT_MAX = 2**63 - 1


def utc_time(text: str) -> datetime:
    """A stored time, back as an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_seed(seed: int) -> None:
    if not _SQLITE_INT_MIN <= seed <= _SQLITE_INT_MAX:
        raise ValueError(f"seed {seed} does not fit a signed 64-bit integer")


def integrity_error(
    exc: sqlite3.IntegrityError, not_found: str, duplicate: str | None = None
) -> RepositoryError | StorageError:
    """Translate SQLite's constraint errors into the core's (or the storage layer's)."""
    if "FOREIGN KEY" in str(exc):
        return RecordNotFound(not_found)
    if "UNIQUE" in str(exc):
        return DuplicateRecord(duplicate or str(exc))
    return StorageError(str(exc))


@dataclasses.dataclass
class _Transaction:
    """The outermost transaction a task is in; savepoint names come from it."""

    active: bool = True
    savepoints: itertools.count[int] = dataclasses.field(default_factory=itertools.count)


class SqliteSession:
    """One connection's transactions and reads. `now` stamps the records whose port
    methods take no time (users and uploads); tests pass a fixed clock."""

    def __init__(
        self, connection: aiosqlite.Connection, *, now: Callable[[], datetime] = utc_now
    ) -> None:
        self._db = connection
        self.now = now
        self._lock = asyncio.Lock()
        self._current: ContextVar[_Transaction | None] = ContextVar(
            f"stylebot_sqlite_tx_{id(self)}", default=None
        )

    async def close(self) -> None:
        """Wait for queued statements, then close the connection."""
        async with self._lock:
            await self._db.close()

    def _inside(self) -> _Transaction | None:
        tx = self._current.get()
        return tx if tx is not None and tx.active else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Writes inside commit together or, on any exception, not at all.

        Nested use (directly, or through a writing method) is a SAVEPOINT: an
        inner block that fails is undone on its own and the outer block can
        carry on, as with any exception the outer block catches.
        """
        tx = self._inside()
        if tx is not None:
            name = f"sp_{next(tx.savepoints)}"
            await self._db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                await asyncio.shield(self._undo_savepoint(name))
                raise
            await self._db.execute(f"RELEASE {name}")
            return

        # SQLITE_FULL (and ENOSPC from the caller's block) is StorageFull: rolled back.
        with storage_full_as_error("the database"):
            async with self._outermost_transaction():
                yield

    @asynccontextmanager
    async def _outermost_transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            # IMMEDIATE takes the write lock now, so another process cannot
            # make this transaction fail half-way with SQLITE_BUSY.
            await self._db.execute("BEGIN IMMEDIATE")
            tx = _Transaction()
            token = self._current.set(tx)
            try:
                yield
            except BaseException:
                # Shielded: a cancelled task must still leave the connection
                # out of the transaction before the next one starts.
                await asyncio.shield(self._rollback())
                raise
            else:
                try:
                    await self._db.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full, I/O error) can leave the
                    # transaction open: never hand the lock on in that state.
                    await asyncio.shield(self._rollback())
                    raise
            finally:
                tx.active = False
                self._current.reset(token)

    async def _rollback(self) -> None:
        # Some errors (e.g. SQLITE_FULL) make SQLite roll back by itself.
        if self._db.in_transaction:
            await self._db.execute("ROLLBACK")

    async def _undo_savepoint(self, name: str) -> None:
        await self._db.execute(f"ROLLBACK TO {name}")
        await self._db.execute(f"RELEASE {name}")

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        """Reads wait for other coroutines' transactions: no dirty reads."""
        if self._inside() is not None:
            yield
            return
        async with self._lock:
            yield

    async def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read on this connection, after other coroutines' transactions."""
        async with self._reading():
            return list(await self._db.execute_fetchall(sql, params))

    async def fetch_row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self.fetch_rows(sql, params)
        return rows[0] if rows else None

    async def write(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        """Run one write inside the caller's `transaction()`, so that it commits or rolls
        back with the rest of it."""
        if self._inside() is None:
            raise RuntimeError("a write needs an open transaction()")
        return await self._db.execute(sql, params)

    async def changes(self, sql: str, params: Sequence[Any] = ()) -> int:
        """`write`, returning how many rows it changed."""
        return (await self.write(sql, params)).rowcount


class SqliteStore:
    """A store on a session it shares with the other stores of a unit of work."""

    def __init__(self, session: SqliteSession) -> None:
        self._session = session

    async def _update_row(
        self, table: str, row_id: object, assignments: str, *values: object
    ) -> None:
        """`UPDATE <table> SET <assignments>` of the row `row_id`; RecordNotFound if none."""
        async with self._session.transaction():
            sql = f"UPDATE {table} SET {assignments} WHERE id = ?"
            if await self._session.changes(sql, (*values, row_id)) == 0:
                raise RecordNotFound(f"{table.removesuffix('s')} {row_id!r} does not exist")


def from_row(record: type[R], row: sqlite3.Row, **converted: Any) -> R:
    """A record (a dataclass) whose fields are the row's columns of the same names;
    `converted` gives the fields whose stored form differs (JSON, enums, times)."""
    names = [f.name for f in dataclasses.fields(cast(Any, record))]
    plain = {name: row[name] for name in names if name not in converted}
    return record(**plain, **converted)
