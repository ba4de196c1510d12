"""Open the SQLite database and bring its schema up to date.

The front end is the only writer (see docs/architecture.md), so one connection per
process is enough; WAL lets readers (backups, `stylebot doctor`) look at the
file while the bot writes, and `busy_timeout` makes a second process wait
for the write lock instead of failing at once.

Migrations are numbered SQL files shipped as package data
(`stylebot/storage/migrations/NNNN_name.sql`). Each one runs in its own
transaction together with the row that records it in `schema_migrations`, so
a failing file leaves the database exactly at the previous version.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import aiosqlite

BUSY_TIMEOUT_MS = 5_000
"""How long a write waits for another process's write lock before failing."""

_MIGRATION_FILE = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")


class StorageError(Exception):
    """Base of the errors the storage layer raises on purpose."""


class MigrationError(StorageError):
    """The schema could not be brought up to date; the message names the file."""


@dataclass(frozen=True)
class Migration:
    """One numbered schema change, e.g. `0001_initial.sql`."""

    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations(directory: Traversable | Path | None = None) -> list[Migration]:
    """Read the `NNNN_name.sql` files of `directory` (default: the packaged ones).

    Files that do not follow the naming scheme are ignored so that a README
    can live next to them; two files with one number are an error because the
    order they would run in is ambiguous.
    """
    root: Traversable | Path = (
        directory if directory is not None else files("stylebot.storage") / "migrations"
    )
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None or not entry.is_file():
            continue
        migration = Migration(
            version=int(match["version"]),
            name=match["name"],
            sql=entry.read_text(encoding="utf-8"),
        )
        if migration.version in found:
            raise MigrationError(
                f"two migrations share version {migration.version:04d}: "
                f"{found[migration.version].filename} and {migration.filename}"
            )
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


async def open_database(
    path: Path, migrations: Sequence[Migration] | None = None
) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path` and migrate it.

    The connection is in autocommit mode (`isolation_level=None`): the
    repository issues BEGIN/COMMIT itself, so Python's sqlite3 module never
    opens or commits a transaction behind its back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        connection.row_factory = sqlite3.Row
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not left in free space: erasure
        # (/forgetme, /style delete) must not leave prompts or names in the file.
        # Builds differ in their default; the write-ahead log is emptied by the
        # repository's wipe_deleted().
        await connection.execute("PRAGMA secure_delete=ON")
        await connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # NORMAL is durable across application crashes in WAL mode; only a
        # power loss can drop the last transactions, never corrupt the file.
        await connection.execute("PRAGMA synchronous=NORMAL")
        await apply_migrations(connection, load_migrations() if migrations is None else migrations)
    except BaseException:
        await connection.close()
        raise
    return connection


async def schema_version(connection: aiosqlite.Connection) -> int:
    """The highest applied migration version (0 for a fresh database)."""
    await _ensure_migrations_table(connection)
    rows = await connection.execute_fetchall("SELECT MAX(version) FROM schema_migrations")
    value = next(iter(rows))[0]
    return int(value) if value is not None else 0


async def apply_migrations(
    connection: aiosqlite.Connection, migrations: Iterable[Migration]
) -> list[Migration]:
    """Apply the migrations not yet recorded, in order; returns those applied.

    Each migration and its `schema_migrations` row commit together. The
    version check happens after `BEGIN IMMEDIATE`, so two processes opening
    one fresh file cannot both apply the same migration.
    """
    pending = sorted(migrations, key=lambda m: m.version)
    known = pending[-1].version if pending else 0
    current = await schema_version(connection)
    if current > known:
        raise MigrationError(
            f"the database is at schema version {current} but this stylebot only "
            f"knows up to {known}: upgrade stylebot or restore a matching backup"
        )
    applied: list[Migration] = []
    for migration in pending:
        await connection.execute("BEGIN IMMEDIATE")
        try:
            rows = await connection.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if rows:
                await connection.execute("ROLLBACK")
                continue
            for statement in split_statements(migration.sql):
                await connection.execute(statement)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (
                    migration.version,
                    migration.name,
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                ),
            )
            await connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                await connection.execute("ROLLBACK")
            raise MigrationError(f"migration {migration.filename} failed: {exc}") from exc
        applied.append(migration)
    return applied


def split_statements(sql: str) -> list[str]:
    """Split a script into single statements.

    `executescript` would be simpler but commits any open transaction first,
    which would break "one migration, one transaction". `complete_statement`
    knows about string literals, comments and trigger bodies, so a `;` inside
    them does not end a statement.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : index + 1]):
            statements.append(sql[start : index + 1])
            start = index + 1
    rest = sql[start:]
    if rest.strip():
        statements.append(rest)
    return statements


async def _ensure_migrations_table(connection: aiosqlite.Connection) -> None:
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
