"""Every released schema upgrades to today's, keeping what it held.

The database files under tests/data/schemas/ were written by each released set of
migrations (tests/support/schema_fixtures.py), with rows in every table. Each is copied,
opened the way the bot opens its database, and read back through today's repository.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.support.schema_fixtures import FIXTURES, IMAGE, LORA, RELEASES, SHA_A

from stylebot.bot.core.ledger import verify_chain
from stylebot.bot.core.model import JobStatus, StyleStatus, Visibility
from stylebot.storage.database import load_migrations
from stylebot.storage.unit_of_work import SqliteUnitOfWork

RELEASED = sorted(FIXTURES.glob("*.sqlite"))


def _schema(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    """Each table's columns and each index's and trigger's definition, by name."""
    db = sqlite3.connect(path)
    try:
        shape: dict[tuple[str, str], list[tuple[object, ...]]] = {}
        for kind, name, sql in db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ):
            if kind == "table":
                shape[(kind, name)] = [
                    tuple(column[1:]) for column in db.execute(f"PRAGMA table_info({name})")
                ]
            else:
                shape[(kind, name)] = [(" ".join(str(sql).split()),)]
        return shape
    finally:
        db.close()


def test_every_release_has_a_database_file() -> None:
    assert [f"{name}-{commit}.sqlite" for name, commit in RELEASES] == sorted(
        (p.name for p in RELEASED), key=[f"{n}-{c}.sqlite" for n, c in RELEASES].index
    )


@pytest.mark.parametrize("released", RELEASED, ids=lambda p: p.stem)
async def test_a_released_database_upgrades_with_its_rows(released: Path, tmp_path: Path) -> None:
    path = tmp_path / "stylebot.sqlite"
    shutil.copy(released, path)

    repo = await SqliteUnitOfWork.open(path)
    try:
        alice = await repo.users.find_user("discord", "1001")
        bob = await repo.users.find_user("telegram", "2002")
        assert alice is not None
        assert bob is not None
        assert alice.display_name == "Alice"

        ink = await repo.styles.find_style(alice.id, "ink")
        assert ink is not None
        assert ink.status is StyleStatus.READY
        assert ink.visibility is Visibility.SERVER
        assert ink.lora_key == LORA
        assert [u.blob_key for u in await repo.uploads.style_uploads(ink.id)] != []
        assert [u.blob_key for u in await repo.uploads.pending_uploads(bob.id)] == [SHA_A]
        # Images from before captions have none: they train on the trigger alone.
        assert {u.caption for u in await repo.uploads.style_uploads(ink.id)} == {None}

        outputs = await repo.outputs.user_outputs(alice.id)
        assert [(o.prompt, o.seed, o.blob_key) for o in outputs] == [
            ("a lighthouse sbt ink", 42, IMAGE)
        ]
        job = await repo.jobs.get_job("generate-1")
        assert job is not None
        assert job.status is JobStatus.FINISHED
        assert await repo.jobs.active_jobs() == []
        # Keys still in use are not handed out for deletion after the upgrade.
        assert await repo.unreferenced_blob_keys([IMAGE, LORA, SHA_A]) == set()
    finally:
        await repo.close()

    records = await SqliteUnitOfWork.open(path)
    try:
        report = verify_chain(await records.ledger.entries())
        assert report.breaks == ()
    finally:
        await records.close()

    db = sqlite3.connect(path)
    try:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        db.close()
    assert versions == [m.version for m in load_migrations()]


@pytest.mark.parametrize("released", RELEASED, ids=lambda p: p.stem)
async def test_an_upgraded_database_has_the_schema_of_a_new_one(
    released: Path, tmp_path: Path
) -> None:
    upgraded, fresh = tmp_path / "upgraded.sqlite", tmp_path / "fresh.sqlite"
    shutil.copy(released, upgraded)
    for path in (upgraded, fresh):
        await (await SqliteUnitOfWork.open(path)).close()

    assert _schema(upgraded) == _schema(fresh)
