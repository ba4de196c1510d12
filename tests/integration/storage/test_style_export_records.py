"""A style's export file in the records (migration 0004): on SQLite and on the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.fakes.memory import InMemoryUnitOfWork
from tests.support.old_database import database_before

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.model import NewConsent, NewStyle, Style, StyleStatus, User
from stylebot.storage.unit_of_work import SqliteUnitOfWork

Repo = SqliteUnitOfWork | InMemoryUnitOfWork
T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
WEIGHTS, EXPORT, IMAGE = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture(params=["sqlite", "memory"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repo]:
    if request.param == "memory":
        yield InMemoryUnitOfWork()
        return
    sqlite = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    yield sqlite
    await sqlite.close()


async def ready_style(repo: Repo, name: str = "alice", style_name: str = "ink") -> Style:
    owner: User = await repo.users.get_or_create_user("discord", name, name)
    upload = await repo.uploads.add_upload(owner.id, IMAGE, "one.png", 64, 64)
    consent = await repo.consents.add_consent(
        NewConsent(owner.id, "CC0-1.0", "v1", True, [IMAGE], T0)
    )
    style = await repo.styles.add_style(
        NewStyle(owner.id, style_name, f"sbt {style_name}", consent.id, "tiny", {}, [upload.id], T0)
    )
    await repo.styles.set_style_status(style.id, StyleStatus.READY, WEIGHTS)
    return style


async def test_a_style_keeps_its_export_key(repo: Repo) -> None:
    style = await ready_style(repo)
    assert await repo.styles.style_export_key(style.id) is None

    await repo.styles.set_style_export(style.id, EXPORT)

    assert await repo.styles.style_export_key(style.id) == EXPORT
    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert stored.lora_key == WEIGHTS  # the generator's weights are untouched


async def test_an_unknown_style_has_no_export(repo: Repo) -> None:
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_export(9999, EXPORT)
    with pytest.raises(RecordNotFound):
        await repo.styles.style_export_key(9999)


async def test_the_export_blob_is_in_use_until_its_style_is_deleted(repo: Repo) -> None:
    style = await ready_style(repo)
    await repo.styles.set_style_export(style.id, EXPORT)
    assert await repo.unreferenced_blob_keys([EXPORT, "d" * 64]) == {"d" * 64}

    keys = await repo.styles.delete_style(style.id)

    assert EXPORT in keys
    assert WEIGHTS in keys
    assert await repo.unreferenced_blob_keys([EXPORT]) == {EXPORT}


async def test_a_database_from_before_exports_upgrades_with_no_export_for_old_styles(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    await database_before(path, 4, lora_key=WEIGHTS, at=T0)

    repo = await SqliteUnitOfWork.open(path)
    try:
        assert await repo.styles.style_export_key(1) is None
        await repo.styles.set_style_export(1, EXPORT)
        assert await repo.styles.style_export_key(1) == EXPORT
    finally:
        await repo.close()
