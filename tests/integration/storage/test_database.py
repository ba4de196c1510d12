"""Opening the database: pragmas, migrations, failures, reopening, two processes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from stylebot.storage.database import (
    Migration,
    MigrationError,
    load_migrations,
    open_database,
    schema_version,
    split_statements,
)
from stylebot.storage.unit_of_work import SqliteUnitOfWork

EXPECTED_TABLES = {"users", "uploads", "consents", "styles", "jobs", "outputs"}


async def scalar(connection: aiosqlite.Connection, sql: str) -> object:
    rows = list(await connection.execute_fetchall(sql))
    return rows[0][0]


async def table_names(connection: aiosqlite.Connection) -> set[str]:
    rows = await connection.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


async def test_open_creates_the_file_sets_pragmas_and_applies_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "stylebot.sqlite"
    connection = await open_database(path)
    try:
        assert path.is_file()
        assert await scalar(connection, "PRAGMA journal_mode") == "wal"
        assert await scalar(connection, "PRAGMA foreign_keys") == 1
        assert await scalar(connection, "PRAGMA busy_timeout") == 5000
        assert await scalar(connection, "PRAGMA synchronous") == 1  # NORMAL
        (row,) = await connection.execute_fetchall("SELECT 1 AS one")
        assert isinstance(row, sqlite3.Row)
        assert row["one"] == 1
        assert await table_names(connection) >= EXPECTED_TABLES
        rows = list(await connection.execute_fetchall("SELECT * FROM schema_migrations"))
        shipped = [(m.version, m.name) for m in load_migrations()]
        assert [(r["version"], r["name"]) for r in rows] == shipped
        assert shipped[0] == (1, "initial")
        assert rows[0]["applied_at"].endswith("+00:00")
        assert await scalar(connection, "PRAGMA integrity_check") == "ok"
        assert list(await connection.execute_fetchall("PRAGMA foreign_key_check")) == []
    finally:
        await connection.close()


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    connection = await open_database(tmp_path / "db.sqlite")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await connection.execute(
                "INSERT INTO uploads (user_id, blob_key, display_name, width, height,"
                " created_at) VALUES (404, 'k', 'n', 1, 1, 't')"
            )
    finally:
        await connection.close()


async def test_reopening_applies_nothing_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = await open_database(path)
    await first.execute(
        "INSERT INTO users (platform, platform_user_id, display_name, created_at)"
        " VALUES ('discord', '1', 'A', '2024-01-01T00:00:00.000000+00:00')"
    )
    applied_at = await scalar(first, "SELECT MAX(applied_at) FROM schema_migrations")
    await first.close()
    latest = load_migrations()[-1].version

    second = await open_database(path)
    try:
        assert await scalar(second, "SELECT COUNT(*) FROM users") == 1
        assert await scalar(second, "SELECT COUNT(*) FROM schema_migrations") == len(
            load_migrations()
        )
        assert await scalar(second, "SELECT MAX(applied_at) FROM schema_migrations") == applied_at
        assert await schema_version(second) == latest
    finally:
        await second.close()


async def test_a_failing_migration_leaves_the_previous_version_and_names_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite"
    shipped = load_migrations()
    latest = shipped[-1].version
    broken = Migration(
        latest + 1,
        "add_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n"
        "INSERT INTO tags (id) VALUES (1);\n"
        "INSERT INTO no_such_table VALUES (1);\n",
    )

    with pytest.raises(MigrationError, match=rf"{latest + 1:04d}_add_tags\.sql") as caught:
        await open_database(path, [*shipped, broken])
    assert "no_such_table" in str(caught.value)

    connection = await open_database(path)  # the shipped migrations alone
    try:
        assert await schema_version(connection) == latest
        assert "tags" not in await table_names(connection)
    finally:
        await connection.close()

    fixed = Migration(latest + 1, "add_tags", "CREATE TABLE tags (id INTEGER PRIMARY KEY);")
    connection = await open_database(path, [*shipped, fixed])
    try:
        assert await schema_version(connection) == latest + 1
        assert "tags" in await table_names(connection)
    finally:
        await connection.close()


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    future = load_migrations()[-1].version + 1
    newer = [*load_migrations(), Migration(future, "future", "CREATE TABLE future (x);")]
    connection = await open_database(path, newer)
    await connection.close()

    with pytest.raises(MigrationError, match=rf"schema version {future}.*upgrade stylebot"):
        await open_database(path)


def test_load_migrations_reads_numbered_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("CREATE TABLE b (x);")
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x);")
    (tmp_path / "README.md").write_text("not a migration")
    (tmp_path / "1_bad_name.sql").write_text("nope")

    found = load_migrations(tmp_path)

    assert [(m.version, m.name, m.filename) for m in found] == [
        (1, "first", "0001_first.sql"),
        (2, "second", "0002_second.sql"),
    ]
    assert found[0].sql == "CREATE TABLE a (x);"

    (tmp_path / "0002_other.sql").write_text("CREATE TABLE c (x);")
    with pytest.raises(MigrationError, match="0002"):
        load_migrations(tmp_path)


def test_the_packaged_migrations_are_found() -> None:
    found = load_migrations()
    assert [m.filename for m in found][:1] == ["0001_initial.sql"]
    assert "CREATE TABLE styles" in found[0].sql


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (x TEXT DEFAULT ';');\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET x = 'a;b';\n"
        "  DELETE FROM t WHERE x = '';\n"
        "END;\n"
        "INSERT INTO t VALUES ('last')"
    )
    parts = split_statements(script)
    assert len(parts) == 3
    assert parts[0].strip().endswith("DEFAULT ';');")
    assert "DELETE FROM t" in parts[1]
    assert parts[1].strip().endswith("END;")
    assert parts[2].strip() == "INSERT INTO t VALUES ('last')"


async def test_two_connections_can_write_concurrently(tmp_path: Path) -> None:
    """A second process (a CLI command, say) waits for the lock instead of failing."""
    path = tmp_path / "db.sqlite"
    first = await SqliteUnitOfWork.open(path)
    second = await SqliteUnitOfWork.open(path)
    try:
        await asyncio.gather(
            *(first.users.get_or_create_user("discord", f"a{n}", "a") for n in range(25)),
            *(second.users.get_or_create_user("telegram", f"b{n}", "b") for n in range(25)),
        )
        seen_by_first = [await first.users.get_user(n) for n in range(1, 52)]
        assert [u is not None for u in seen_by_first] == [True] * 50 + [False]
        assert {u.platform for u in seen_by_first if u} == {"discord", "telegram"}
    finally:
        await first.close()
        await second.close()
