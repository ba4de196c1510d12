"""`SqliteRepository`: the core's `Repository` port on one aiosqlite connection.

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
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiosqlite

from stylebot.bot.core.errors import (
    DuplicateRecord,
    DuplicateStyleName,
    RecordNotFound,
    RepositoryError,
)
from stylebot.bot.core.model import (
    Consent,
    Job,
    JobStatus,
    Output,
    Requester,
    Style,
    StyleStatus,
    Upload,
    User,
    Visibility,
)
from stylebot.queue.payloads import ValidationPoint
from stylebot.storage.band_index import ids_with_bands
from stylebot.storage.database import StorageError, open_database
from stylebot.storage.full import storage_full_as_error

__all__ = [
    "DuplicateRecord",
    "DuplicateStyleName",
    "RecordNotFound",
    "SqliteRepository",
]

_SQLITE_INT_MIN = -(2**63)
_SQLITE_INT_MAX = 2**63 - 1

log = logging.getLogger(__name__)


def _utc_text(moment: datetime) -> str:
    """Store times as fixed-width UTC text, which sorts in time order.

    Naive datetimes are refused: guessing their zone would silently shift
    every stored time on a host with a non-UTC clock.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_seed(seed: int) -> None:
    if not _SQLITE_INT_MIN <= seed <= _SQLITE_INT_MAX:
        raise ValueError(f"seed {seed} does not fit a signed 64-bit integer")


@dataclasses.dataclass
class _Transaction:
    """The outermost transaction a task is in; savepoint names come from it."""

    active: bool = True
    savepoints: itertools.count[int] = dataclasses.field(default_factory=itertools.count)


class SqliteRepository:
    """Records in SQLite. Build with `await SqliteRepository.open(path)`.

    `now` stamps the records whose port methods take no time (users and
    uploads); tests pass a fixed clock.
    """

    def __init__(
        self, connection: aiosqlite.Connection, *, now: Callable[[], datetime] = _utc_now
    ) -> None:
        self._db = connection
        self._now = now
        self._lock = asyncio.Lock()
        self._current: ContextVar[_Transaction | None] = ContextVar(
            f"stylebot_sqlite_tx_{id(self)}", default=None
        )

    @classmethod
    async def open(cls, path: Path, *, now: Callable[[], datetime] = _utc_now) -> Self:
        """Open (and migrate) the database file at `path`."""
        return cls(await open_database(path), now=now)

    async def close(self) -> None:
        """Wait for queued statements, then close the connection."""
        async with self._lock:
            await self._db.close()

    # -- transactions -----------------------------------------------------

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

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._reading():
            return list(await self._db.execute_fetchall(sql, params))

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Cursor:
        """Run one statement inside the current transaction (the caller opens it)."""
        return await self._db.execute(sql, params)

    # -- for stores that share this connection (ledger, opt-outs, usage) ------

    async def fetch_rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read on this connection, after other coroutines' transactions."""
        return await self._fetchall(sql, params)

    async def write_in_transaction(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write inside the caller's `transaction()` of this repository, so that it
        commits or rolls back with the repository's own writes; returns the rows it changed."""
        if self._inside() is None:
            raise RuntimeError("write_in_transaction needs an open transaction()")
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    # -- users ----------------------------------------------------------------

    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str
    ) -> User:
        """The user, created on first sight; a changed display name is updated."""
        async with self.transaction():
            await self._write(
                "INSERT INTO users (platform, platform_user_id, display_name, created_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (platform, platform_user_id) DO UPDATE"
                " SET display_name = excluded.display_name"
                " WHERE display_name != excluded.display_name",
                (platform, platform_user_id, display_name, _utc_text(self._now())),
            )
            row = await self._fetchone(
                "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
                (platform, platform_user_id),
            )
        assert row is not None
        return _user(row)

    async def get_user(self, user_id: int) -> User | None:
        row = await self._fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row is not None else None

    async def find_user(self, platform: str, platform_user_id: str) -> User | None:
        row = await self._fetchone(
            "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )
        return _user(row) if row is not None else None

    async def erase_user(self, user_id: int) -> list[str]:
        """Delete the user's remaining records and the user row, in one transaction.

        Their styles must already be gone (delete_style), else RepositoryError and
        nothing changes.
        """
        async with self.transaction():
            if await self._fetchone("SELECT 1 FROM users WHERE id = ?", (user_id,)) is None:
                raise RecordNotFound(f"user {user_id} does not exist")
            if await self._fetchone("SELECT 1 FROM styles WHERE owner_id = ?", (user_id,)):
                raise RepositoryError(
                    f"user {user_id} still owns styles: delete them before erasing the user"
                )
            rows = await self._fetchall(
                "SELECT blob_key FROM uploads WHERE user_id = ?"
                " UNION SELECT blob_key FROM outputs WHERE user_id = ? AND blob_key IS NOT NULL",
                (user_id, user_id),
            )
            # Children first: outputs name jobs, jobs and uploads name the user.
            await self._write("DELETE FROM outputs WHERE user_id = ?", (user_id,))
            await self._write("DELETE FROM uploads WHERE user_id = ?", (user_id,))
            await self._write("DELETE FROM consents WHERE user_id = ?", (user_id,))
            await self._write("DELETE FROM jobs WHERE user_id = ?", (user_id,))
            await self._write("DELETE FROM users WHERE id = ?", (user_id,))
        return sorted({row[0] for row in rows})

    # -- uploads --------------------------------------------------------------

    async def add_upload(
        self, user_id: int, blob_key: str, display_name: str, width: int, height: int
    ) -> Upload:
        created_at = _utc_text(self._now())
        async with self.transaction():
            try:
                cursor = await self._write(
                    "INSERT INTO uploads"
                    " (user_id, blob_key, display_name, width, height, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (user_id, blob_key, display_name, width, height, created_at),
                )
            except sqlite3.IntegrityError as exc:
                raise _integrity_error(exc, f"user {user_id} does not exist") from exc
            row = await self._fetchone("SELECT * FROM uploads WHERE id = ?", (cursor.lastrowid,))
        assert row is not None
        return _upload(row)

    async def pending_uploads(self, user_id: int) -> list[Upload]:
        """The user's uploads not yet used by a style, oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM uploads WHERE user_id = ? AND style_id IS NULL ORDER BY id",
            (user_id,),
        )
        return [_upload(row) for row in rows]

    async def discard_pending_uploads(self, user_id: int) -> list[Upload]:
        """Delete the pending uploads and return them.

        The caller deletes blobs no longer referenced: a blob may be shared
        with another upload (same image twice), so this layer cannot know.
        """
        async with self.transaction():
            removed = await self.pending_uploads(user_id)
            await self._write(
                "DELETE FROM uploads WHERE user_id = ? AND style_id IS NULL", (user_id,)
            )
        return removed

    async def style_uploads(self, style_id: int) -> list[Upload]:
        rows = await self._fetchall(
            "SELECT * FROM uploads WHERE style_id = ? ORDER BY id", (style_id,)
        )
        return [_upload(row) for row in rows]

    async def unreferenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that no upload, style (LoRA) or output uses any more.

        Blobs are content-addressed, so two
        uploads of the same image (even by two users) share one blob: after
        `discard_pending_uploads`, only these keys are safe to delete.
        """
        unused: set[str] = set()
        async with self._reading():
            for key in dict.fromkeys(keys):
                rows = await self._db.execute_fetchall(
                    "SELECT EXISTS (SELECT 1 FROM uploads WHERE blob_key = ?)"
                    " OR EXISTS (SELECT 1 FROM styles WHERE lora_key = ?)"
                    " OR EXISTS (SELECT 1 FROM styles WHERE export_key = ?)"
                    " OR EXISTS (SELECT 1 FROM styles WHERE embedding_key = ?)"
                    " OR EXISTS (SELECT 1 FROM outputs WHERE blob_key = ?)",
                    (key, key, key, key, key),
                )
                if not next(iter(rows))[0]:
                    unused.add(key)
        return unused

    # -- consents -------------------------------------------------------------

    async def add_consent(
        self,
        user_id: int,
        licence: str,
        terms_version: str,
        rights_confirmed: bool,
        image_hashes: Sequence[str],
        created_at: datetime,
    ) -> Consent:
        hashes = json.dumps(list(image_hashes))
        async with self.transaction():
            try:
                cursor = await self._write(
                    "INSERT INTO consents (user_id, licence, terms_version, rights_confirmed,"
                    " image_hashes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user_id,
                        licence,
                        terms_version,
                        int(bool(rights_confirmed)),
                        hashes,
                        _utc_text(created_at),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise _integrity_error(exc, f"user {user_id} does not exist") from exc
            row = await self._fetchone("SELECT * FROM consents WHERE id = ?", (cursor.lastrowid,))
        assert row is not None
        return _consent(row)

    async def latest_consent(self, user_id: int) -> Consent | None:
        """The user's newest consent not yet tied to a style."""
        row = await self._fetchone(
            "SELECT * FROM consents WHERE user_id = ? AND style_id IS NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (user_id,),
        )
        return _consent(row) if row is not None else None

    # -- styles ---------------------------------------------------------------

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
        """Create a private style in TRAINING and tie the uploads and consent to it.

        The consent must be the owner's and unused, and every upload the
        owner's and pending; otherwise `RecordNotFound` and nothing changes.
        """
        settings = json.dumps(train_settings, sort_keys=True)
        created = _utc_text(created_at)
        wanted = sorted(set(upload_ids))
        async with self.transaction():
            consent = await self._fetchone(
                "SELECT id FROM consents WHERE id = ? AND user_id = ? AND style_id IS NULL",
                (consent_id, owner_id),
            )
            if consent is None:
                raise RecordNotFound(f"user {owner_id} has no unused consent {consent_id}")
            if wanted:
                marks = ",".join("?" * len(wanted))
                rows = await self._fetchall(
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
                cursor = await self._write(
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
                raise _integrity_error(exc, f"user {owner_id} does not exist") from exc
            style_id = cursor.lastrowid
            if wanted:
                await self._write(
                    f"UPDATE uploads SET style_id = ? WHERE id IN ({marks})",
                    (style_id, *wanted),
                )
            await self._write(
                "UPDATE consents SET style_id = ? WHERE id = ?", (style_id, consent_id)
            )
            row = await self._fetchone("SELECT * FROM styles WHERE id = ?", (style_id,))
        assert row is not None
        return _style(row)

    async def get_style(self, style_id: int) -> Style | None:
        row = await self._fetchone("SELECT * FROM styles WHERE id = ?", (style_id,))
        return _style(row) if row is not None else None

    async def find_style(self, owner_id: int, name: str) -> Style | None:
        row = await self._fetchone(
            "SELECT * FROM styles WHERE owner_id = ? AND name = ?", (owner_id, name)
        )
        return _style(row) if row is not None else None

    async def styles_named(self, name: str) -> list[Style]:
        rows = await self._fetchall("SELECT * FROM styles WHERE name = ? ORDER BY id", (name,))
        return [_style(row) for row in rows]

    async def candidate_styles(self, owner_id: int, scope: str | None) -> list[Style]:
        """The owner's styles, those shared to `scope`, and public ones, by id.

        A UNION of three indexed lookups rather than one OR, so that each arm
        uses its index; `shared_scope = NULL` matches nothing, as intended.
        """
        rows = await self._fetchall(
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
        async with self.transaction():
            cursor = await self._write(
                "UPDATE styles SET status = ?, lora_key = COALESCE(?, lora_key) WHERE id = ?",
                (status.value, lora_key, style_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def set_style_export(self, style_id: int, export_key: str) -> None:
        async with self.transaction():
            cursor = await self._write(
                "UPDATE styles SET export_key = ? WHERE id = ?", (export_key, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def set_style_embedding(self, style_id: int, embedding_key: str) -> None:
        """The style's textual-inversion embedding (blob key), loaded at generation."""
        async with self.transaction():
            cursor = await self._write(
                "UPDATE styles SET embedding_key = ? WHERE id = ?", (embedding_key, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def style_export_key(self, style_id: int) -> str | None:
        row = await self._fetchone("SELECT export_key FROM styles WHERE id = ?", (style_id,))
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        export_key: str | None = row["export_key"]
        return export_key

    async def set_style_validation(self, style_id: int, curve: Sequence[ValidationPoint]) -> None:
        text = json.dumps([point.to_dict() for point in curve], sort_keys=True)
        async with self.transaction():
            cursor = await self._write(
                "UPDATE styles SET validation = ? WHERE id = ?", (text, style_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def style_validation(self, style_id: int) -> tuple[ValidationPoint, ...]:
        row = await self._fetchone("SELECT validation FROM styles WHERE id = ?", (style_id,))
        if row is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        raw = json.loads(row["validation"]) if row["validation"] else []
        return tuple(ValidationPoint.from_dict(point) for point in raw)

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        """Share or unshare a style.

        A scope is required for SERVER and refused otherwise, so a stale scope
        can never make a private style show up in a server.
        """
        visibility = Visibility(visibility)
        _check_scope(visibility, shared_scope)
        async with self.transaction():
            cursor = await self._write(
                "UPDATE styles SET visibility = ?, shared_scope = ? WHERE id = ?",
                (visibility.value, shared_scope, style_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"style {style_id} does not exist")

    async def delete_style(self, style_id: int) -> list[str]:
        async with self.transaction():
            style = await self._fetchone(
                "SELECT consent_id, lora_key, export_key, embedding_key FROM styles WHERE id = ?",
                (style_id,),
            )
            if style is None:
                raise RecordNotFound(f"style {style_id} does not exist")
            rows = await self._fetchall(
                "SELECT blob_key FROM uploads WHERE style_id = ?"
                " UNION SELECT blob_key FROM outputs WHERE style_id = ? AND blob_key IS NOT NULL",
                (style_id, style_id),
            )
            keys = [row[0] for row in rows]
            if style["lora_key"] is not None:
                keys.append(style["lora_key"])
            if style["export_key"] is not None:
                keys.append(style["export_key"])
            if style["embedding_key"] is not None:
                keys.append(style["embedding_key"])
            await self._write("DELETE FROM outputs WHERE style_id = ?", (style_id,))
            await self._write("DELETE FROM uploads WHERE style_id = ?", (style_id,))
            await self._write("UPDATE jobs SET style_id = NULL WHERE style_id = ?", (style_id,))
            # styles and consents point at each other: untie, then delete both.
            await self._write("UPDATE consents SET style_id = NULL WHERE style_id = ?", (style_id,))
            await self._write("DELETE FROM styles WHERE id = ?", (style_id,))
            await self._write("DELETE FROM consents WHERE id = ?", (style["consent_id"],))
        return sorted(set(keys))

    # -- jobs -----------------------------------------------------------------

    async def add_job(
        self,
        job_id: str,
        kind: str,
        user_id: int,
        origin: Requester,
        created_at: datetime,
        style_id: int | None = None,
    ) -> Job:
        created = _utc_text(created_at)
        async with self.transaction():
            try:
                await self._write(
                    "INSERT INTO jobs (id, kind, user_id, style_id, status, origin,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        kind,
                        user_id,
                        style_id,
                        JobStatus.QUEUED.value,
                        json.dumps(dataclasses.asdict(origin), sort_keys=True),
                        created,
                        created,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise DuplicateRecord(f"job {job_id!r} already exists") from exc
                raise _integrity_error(
                    exc, f"job {job_id!r}: user {user_id} or style {style_id} does not exist"
                ) from exc
            row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert row is not None
        return _job(row)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row is not None else None

    async def update_job(
        self,
        job_id: str,
        status: JobStatus,
        updated_at: datetime,
        step: int | None = None,
        total: int | None = None,
        error: str | None = None,
    ) -> None:
        """Set the status and time; `None` for step, total or error keeps the stored value."""
        status = JobStatus(status)
        async with self.transaction():
            cursor = await self._write(
                "UPDATE jobs SET status = ?, updated_at = ?, step = COALESCE(?, step),"
                " total = COALESCE(?, total), error = COALESCE(?, error) WHERE id = ?",
                (status.value, _utc_text(updated_at), step, total, error, job_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"job {job_id!r} does not exist")

    async def cancel_active_job(self, job_id: str, updated_at: datetime) -> bool:
        async with self.transaction():
            cursor = await self._write(
                "UPDATE jobs SET status = 'cancelled', updated_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (_utc_text(updated_at), job_id),
            )
            return cursor.rowcount == 1

    async def active_jobs(self, user_id: int | None = None) -> list[Job]:
        """Jobs not yet finished, failed or cancelled, oldest first."""
        # The literal IN list matches the partial indexes' predicate.
        if user_id is None:
            rows = await self._fetchall(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running')"
                " ORDER BY created_at, rowid"
            )
        else:
            rows = await self._fetchall(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running') AND user_id = ?"
                " ORDER BY created_at, rowid",
                (user_id,),
            )
        return [_job(row) for row in rows]

    async def job_ids(
        self, *, user_id: int | None = None, style_id: int | None = None
    ) -> list[str]:
        if user_id is None and style_id is None:
            return []
        rows = await self._fetchall(
            "SELECT id FROM jobs WHERE (? IS NULL OR user_id = ?) AND (? IS NULL OR style_id = ?)"
            " ORDER BY created_at, rowid",
            (user_id, user_id, style_id, style_id),
        )
        return [str(row[0]) for row in rows]

    # -- outputs --------------------------------------------------------------

    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        """Store a batch of outputs: all of them or, on any error, none."""
        rows = []
        for output in outputs:
            _check_seed(output.seed)
            rows.append(
                (
                    output.id,
                    output.job_id,
                    output.user_id,
                    output.style_id,
                    output.prompt,
                    output.negative_prompt,
                    output.seed,
                    output.steps,
                    float(output.guidance),
                    output.width,
                    output.height,
                    output.blob_key,
                    _utc_text(output.created_at),
                    output.maker_name,
                    output.maker_username,
                    None if output.made_in_private is None else int(output.made_in_private),
                    output.fingerprint,
                )
            )
        async with self.transaction():
            for row in rows:
                try:
                    await self._write(
                        "INSERT INTO outputs (id, job_id, user_id, style_id, prompt,"
                        " negative_prompt, seed, steps, guidance, width, height, blob_key,"
                        " created_at, maker_name, maker_username, made_in_private,"
                        " fingerprint) VALUES"
                        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                except sqlite3.IntegrityError as exc:
                    if "UNIQUE" in str(exc):
                        raise DuplicateRecord(f"output {row[0]!r} already exists") from exc
                    raise _integrity_error(
                        exc, f"output {row[0]!r}: its job, user or style does not exist"
                    ) from exc

    async def get_output(self, output_id: str) -> Output | None:
        row = await self._fetchone("SELECT * FROM outputs WHERE id = ?", (output_id,))
        return _output(row) if row is not None else None

    async def user_outputs(self, user_id: int) -> list[Output]:
        rows = await self._fetchall(
            "SELECT * FROM outputs WHERE user_id = ? ORDER BY created_at, rowid", (user_id,)
        )
        return [_output(row) for row in rows]

    async def style_outputs(self, style_id: int) -> list[Output]:
        rows = await self._fetchall(
            "SELECT * FROM outputs WHERE style_id = ? ORDER BY created_at, rowid", (style_id,)
        )
        return [_output(row) for row in rows]

    async def job_outputs(self, job_id: str) -> list[Output]:
        """The job's outputs in the order they were added."""
        rows = await self._fetchall(
            "SELECT * FROM outputs WHERE job_id = ? ORDER BY rowid", (job_id,)
        )
        return [_output(row) for row in rows]

    async def set_output_blob(self, output_id: str, blob_key: str, seed: int) -> None:
        """Record where the finished image is, and the seed it was really made with."""
        _check_seed(seed)
        async with self.transaction():
            cursor = await self._write(
                "UPDATE outputs SET blob_key = ?, seed = ? WHERE id = ?",
                (blob_key, seed, output_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"output {output_id!r} does not exist")

    async def set_output_fingerprint(self, output_id: str, fingerprint: str) -> None:
        """A trigger of migration 0009 indexes the fingerprint's bands."""
        async with self.transaction():
            cursor = await self._write(
                "UPDATE outputs SET fingerprint = ? WHERE id = ?", (fingerprint, output_id)
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"output {output_id!r} does not exist")

    async def outputs_with_bands(self, probes: Sequence[tuple[int, str]]) -> list[Output]:
        if not probes:
            return []
        matching, params = ids_with_bands("output_fingerprint_bands", "output_id", probes)
        rows = await self._fetchall(
            f"SELECT * FROM outputs WHERE id IN ({matching}) ORDER BY created_at, rowid",
            params,
        )
        return [_output(row) for row in rows]

    async def delete_output(self, output_id: str) -> str | None:
        async with self.transaction():
            row = await self._fetchone("SELECT blob_key FROM outputs WHERE id = ?", (output_id,))
            if row is None:
                raise RecordNotFound(f"output {output_id!r} does not exist")
            await self._write("DELETE FROM outputs WHERE id = ?", (output_id,))
        blob_key: str | None = row[0]
        return blob_key

    async def wipe_deleted(self) -> None:
        # secure_delete (open_database) zeroes deleted content in the pages, but the
        # write-ahead log keeps earlier copies of them until it is checkpointed and
        # emptied. TRUNCATE waits for readers (busy_timeout); a busy result is logged.
        rows = await self._fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
        if rows and rows[0][0]:
            log.warning("the write-ahead log could not be emptied after a deletion (busy)")


def _check_scope(visibility: Visibility, shared_scope: str | None) -> None:
    if (visibility is Visibility.SERVER) != (shared_scope is not None):
        raise ValueError(
            "a server-shared style needs a shared_scope, and only a server-shared style has one"
        )


def _integrity_error(exc: sqlite3.IntegrityError, not_found: str) -> RepositoryError | StorageError:
    """Translate SQLite's constraint errors into the storage layer's own."""
    if "FOREIGN KEY" in str(exc):
        return RecordNotFound(not_found)
    if "UNIQUE" in str(exc):
        return DuplicateRecord(str(exc))
    return StorageError(str(exc))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        platform=row["platform"],
        platform_user_id=row["platform_user_id"],
        display_name=row["display_name"],
        created_at=_time(row["created_at"]),
    )


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(
        id=row["id"],
        user_id=row["user_id"],
        blob_key=row["blob_key"],
        display_name=row["display_name"],
        width=row["width"],
        height=row["height"],
        created_at=_time(row["created_at"]),
        style_id=row["style_id"],
    )


def _consent(row: sqlite3.Row) -> Consent:
    return Consent(
        id=row["id"],
        user_id=row["user_id"],
        licence=row["licence"],
        terms_version=row["terms_version"],
        rights_confirmed=bool(row["rights_confirmed"]),
        image_hashes=tuple(json.loads(row["image_hashes"])),
        created_at=_time(row["created_at"]),
        style_id=row["style_id"],
    )


def _style(row: sqlite3.Row) -> Style:
    return Style(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        trigger=row["trigger"],
        visibility=Visibility(row["visibility"]),
        status=StyleStatus(row["status"]),
        consent_id=row["consent_id"],
        base_model=row["base_model"],
        created_at=_time(row["created_at"]),
        shared_scope=row["shared_scope"],
        lora_key=row["lora_key"],
        train_settings=json.loads(row["train_settings"]),
        embedding_key=row["embedding_key"],
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        user_id=row["user_id"],
        origin=Requester(**json.loads(row["origin"])),
        status=JobStatus(row["status"]),
        created_at=_time(row["created_at"]),
        updated_at=_time(row["updated_at"]),
        style_id=row["style_id"],
        step=row["step"],
        total=row["total"],
        error=row["error"],
    )


def _output(row: sqlite3.Row) -> Output:
    return Output(
        id=row["id"],
        job_id=row["job_id"],
        user_id=row["user_id"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        seed=row["seed"],
        steps=row["steps"],
        guidance=row["guidance"],
        width=row["width"],
        height=row["height"],
        created_at=_time(row["created_at"]),
        style_id=row["style_id"],
        blob_key=row["blob_key"],
        maker_name=row["maker_name"],
        maker_username=row["maker_username"],
        made_in_private=None if row["made_in_private"] is None else bool(row["made_in_private"]),
        fingerprint=row["fingerprint"],
    )
