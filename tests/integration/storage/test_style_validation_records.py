"""A style's validation curve (migration 0005), CLIP metrics (0013) and base model
(0015) in the records: on SQLite and on the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.fakes.memory import InMemoryUnitOfWork

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.model import NewConsent, NewStyle, Style, StyleStatus
from stylebot.queue.payloads import StyleMetrics, TrainedBase, ValidationPoint
from stylebot.storage.unit_of_work import SqliteUnitOfWork

Repo = SqliteUnitOfWork | InMemoryUnitOfWork
T0 = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
IMAGE = "c" * 64
CURVE = (ValidationPoint(50, 0.31, 0.25), ValidationPoint(100, 0.2125, 0.25))
METRICS = StyleMetrics(0.21, 0.8, 0.59, 27.5, 29.0, 0.012, 4, "openai/clip-vit-large-patch14")
FLUX_DEV = TrainedBase(
    "flux1-dev.safetensors",
    "flux-dev",
    "f" * 64,
    "FLUX.1 [dev] Non-Commercial License",
    "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
)


@pytest.fixture(params=["sqlite", "memory"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repo]:
    if request.param == "memory":
        yield InMemoryUnitOfWork()
        return
    sqlite = await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite")
    yield sqlite
    await sqlite.close()


async def _style(repo: Repo) -> Style:
    owner = await repo.users.get_or_create_user("discord", "alice", "Alice")
    upload = await repo.uploads.add_upload(owner.id, IMAGE, "one.png", 64, 64)
    consent = await repo.consents.add_consent(
        NewConsent(owner.id, "CC0-1.0", "v1", True, [IMAGE], T0)
    )
    style = await repo.styles.add_style(
        NewStyle(owner.id, "ink", "sbt ink", consent.id, "tiny", {"steps": 100}, [upload.id], T0)
    )
    await repo.styles.set_style_status(style.id, StyleStatus.READY, "a" * 64)
    return style


async def test_a_style_keeps_its_validation_curve(repo: Repo) -> None:
    style = await _style(repo)
    assert await repo.styles.style_validation(style.id) == ()
    await repo.styles.set_style_validation(style.id, CURVE)
    assert await repo.styles.style_validation(style.id) == CURVE
    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert stored.train_settings == {"steps": 100}  # the settings stay as they were


async def test_an_unknown_style_has_no_curve_and_gets_none(repo: Repo) -> None:
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_validation(9999, CURVE)
    with pytest.raises(RecordNotFound):
        await repo.styles.style_validation(9999)


async def test_the_curve_goes_with_its_style(repo: Repo) -> None:
    style = await _style(repo)
    await repo.styles.set_style_validation(style.id, CURVE)
    await repo.styles.delete_style(style.id)
    with pytest.raises(RecordNotFound):
        await repo.styles.style_validation(style.id)


async def test_a_style_keeps_its_metrics_and_they_go_with_it(repo: Repo) -> None:
    style = await _style(repo)
    assert await repo.styles.style_metrics(style.id) is None
    await repo.styles.set_style_metrics(style.id, METRICS)
    assert await repo.styles.style_metrics(style.id) == METRICS
    without_kid = StyleMetrics(-0.05, 0.5, 0.55, 20.0, 21.0, None, 4, "clip")
    await repo.styles.set_style_metrics(style.id, without_kid)
    assert await repo.styles.style_metrics(style.id) == without_kid
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_metrics(9999, METRICS)
    await repo.styles.delete_style(style.id)
    with pytest.raises(RecordNotFound):
        await repo.styles.style_metrics(style.id)


async def test_a_style_records_the_base_model_it_trained_on(repo: Repo) -> None:
    style = await _style(repo)
    assert style.base_model_variant is None
    assert style.base_model_licence is None
    await repo.styles.set_style_base(style.id, FLUX_DEV)
    stored = await repo.styles.get_style(style.id)
    assert stored is not None
    assert stored.base_model == "tiny"  # the operator's setting when asked for stays
    assert stored.base_model_variant == "flux-dev"
    assert stored.base_model_sha256 == "f" * 64
    assert stored.base_model_licence == FLUX_DEV.licence
    assert stored.base_model_licence_url == FLUX_DEV.licence_url
    with pytest.raises(RecordNotFound):
        await repo.styles.set_style_base(9999, FLUX_DEV)
