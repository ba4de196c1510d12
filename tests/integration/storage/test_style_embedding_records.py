"""A style's textual-inversion embedding in the records (migration 0006): on
SQLite and on the fake."""

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
EMBEDDING, WEIGHTS, IMAGE = "e" * 64, "a" * 64, "c" * 64


@pytest.fixture(params=["sqlite", "memory"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repo]:
    if request.param == "memory":
        yield InMemoryUnitOfWork()
        return
    sqlite = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    yield sqlite
    await sqlite.close()


async def training_style(repo: Repo) -> Style:
    owner: User = await repo.users.get_or_create_user("discord", "alice", "alice")
    upload = await repo.uploads.add_upload(owner.id, IMAGE, "one.png", 64, 64)
    consent = await repo.consents.add_consent(
        NewConsent(owner.id, "CC0-1.0", "v1", True, [IMAGE], T0)
    )
    return await repo.styles.add_style(
        NewStyle(owner.id, "ink", "sbt ink", consent.id, "tiny", {}, [upload.id], T0)
    )


async def test_a_textual_inversion_style_is_ready_with_an_embedding_and_no_lora(
    repo: Repo,
) -> None:
    style = await training_style(repo)
    assert style.embedding_key is None

    async with repo.transaction():
        await repo.styles.set_style_status(style.id, StyleStatus.READY, None)
        await repo.styles.set_style_embedding(style.id, EMBEDDING)

    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert stored.status is StyleStatus.READY
    assert stored.embedding_key == EMBEDDING
    assert stored.lora_key is None


async def test_the_embedding_blob_is_in_use_until_its_style_is_deleted(repo: Repo) -> None:
    style = await training_style(repo)
    await repo.styles.set_style_status(style.id, StyleStatus.READY, WEIGHTS)
    await repo.styles.set_style_embedding(style.id, EMBEDDING)
    assert await repo.unreferenced_blob_keys([EMBEDDING, "d" * 64]) == {"d" * 64}

    keys = await repo.styles.delete_style(style.id)

    assert EMBEDDING in keys
    assert WEIGHTS in keys
    assert await repo.unreferenced_blob_keys([EMBEDDING]) == {EMBEDDING}


async def test_an_unknown_style_gets_no_embedding(repo: Repo) -> None:
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_embedding(9999, EMBEDDING)


async def test_a_database_from_before_embeddings_upgrades_with_none_for_old_styles(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    await database_before(path, 6, lora_key=WEIGHTS, at=T0)

    repo = await SqliteUnitOfWork.open(path)
    try:
        style = await repo.styles.get_style(1)
        assert style is not None
        assert style.embedding_key is None
        assert style.lora_key == WEIGHTS
        await repo.styles.set_style_embedding(1, EMBEDDING)
        updated = await repo.styles.get_style(1)
        assert updated is not None
        assert updated.embedding_key == EMBEDDING
    finally:
        await repo.close()
