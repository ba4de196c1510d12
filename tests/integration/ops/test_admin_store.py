"""The admin store's contract, on SQLite and on the in-memory fake alike; the pause flag
on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.fakes.admin import FakeAdminStore
from tests.fakes.memory import InMemoryUnitOfWork

from stylebot.bot.core.model import Requester
from stylebot.config import load_settings
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.queue.training_switch import RedisTrainingSwitch, training_paused
from stylebot.storage.admin import SqliteAdminStore, open_admin_ports, operators_from
from stylebot.storage.database import load_migrations
from stylebot.storage.unit_of_work import SqliteUnitOfWork

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ORIGIN = Requester("discord", "alice", "Alice", chat_id="c1", server_id="g1")


@dataclass
class Backend:
    repo: Any  # SqliteUnitOfWork or InMemoryUnitOfWork: the Repository port
    store: Any  # SqliteAdminStore or FakeAdminStore: the AdminStore port


@pytest.fixture(params=["sqlite", "memory"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        repo = InMemoryUnitOfWork()
        yield Backend(repo, FakeAdminStore())
        return
    database = tmp_path / "stylebot.sqlite3"
    repo = await SqliteUnitOfWork.open(database)
    store = await SqliteAdminStore.open(database)
    try:
        yield Backend(repo, store)
    finally:
        await store.close()
        await repo.close()


def test_the_admin_migration_is_0002_and_runs_after_the_first() -> None:
    versions = [m.version for m in load_migrations()]
    assert 2 in versions
    assert versions == sorted(versions)


async def test_bans_are_per_platform_and_a_second_ban_updates_the_first(
    backend: Backend,
) -> None:
    store = backend.store
    assert await store.ban_of("discord", "alice") is None
    await store.ban("discord", "alice", "spam", "discord:root", NOW)
    await store.ban("discord", "alice", "spam again", "discord:root", NOW + timedelta(hours=1))
    ban = await store.ban_of("discord", "alice")
    assert ban is not None
    assert (ban.reason, ban.created_at) == ("spam again", NOW + timedelta(hours=1))
    assert await store.ban_of("telegram", "alice") is None
    assert await store.unban("discord", "alice") is True
    assert await store.unban("discord", "alice") is False
    assert await store.ban_of("discord", "alice") is None


async def test_quotas_are_per_scope_and_kind_and_none_removes(backend: Backend) -> None:
    store = backend.store
    await store.set_quota("*", "generate", 10, "discord:root", NOW)
    await store.set_quota("discord:g1", "generate", 3, "discord:mia", NOW)
    await store.set_quota("discord:g1", "train", 1, "discord:mia", NOW)
    await store.set_quota("discord:g1", "generate", 2, "discord:mia", NOW)
    found = await store.quotas(["*", "discord:g1"], "generate")
    assert [(q.scope, q.per_day, q.set_by) for q in found] == [
        ("*", 10, "discord:root"),
        ("discord:g1", 2, "discord:mia"),
    ]
    assert [q.per_day for q in await store.quotas(["discord:g2"], "generate")] == []
    await store.set_quota("discord:g1", "generate", None, "discord:mia", NOW)
    assert [q.scope for q in await store.quotas(["*", "discord:g1"], "generate")] == ["*"]
    assert [q.per_day for q in await store.quotas(["discord:g1"], "train")] == [1]


async def test_the_admin_log_keeps_actions_newest_first(backend: Backend) -> None:
    await backend.store.log_action("discord:root", "pause-training", "", NOW)
    await backend.store.log_action("discord:mia", "set-quota", "discord:g1 generate 2", NOW)
    actions = await backend.store.recent_actions()
    assert [(who, action) for _at, who, action, _detail in actions] == [
        ("discord:mia", "set-quota"),
        ("discord:root", "pause-training"),
    ]


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "data") as server:
        yield server


async def test_the_pause_flag_is_shared_through_redis(embedded_redis: EmbeddedRedis) -> None:
    front_end = Redis.from_url(embedded_redis.url)
    worker = Redis.from_url(embedded_redis.url)  # another process's connection, in effect
    try:
        switch = RedisTrainingSwitch(front_end)
        assert await switch.paused_by() is None
        assert await training_paused(worker) is False
        await switch.pause("discord:root")
        assert await switch.paused_by() == "discord:root"
        assert await training_paused(worker) is True
        await switch.resume()
        assert await training_paused(worker) is False
    finally:
        await front_end.aclose()
        await worker.aclose()


async def test_admin_ports_for_a_front_end_read_the_operators_setting(
    tmp_path: Path, embedded_redis: EmbeddedRedis
) -> None:
    settings = load_settings(
        environ={}, data_dir=tmp_path / "fe", operators="discord:1, telegram:2"
    )
    assert operators_from(settings) == {"discord:1", "telegram:2"}
    assert operators_from(load_settings(environ={}, data_dir=tmp_path / "fe")) == frozenset()
    redis = Redis.from_url(embedded_redis.url)
    ports, store = await open_admin_ports(settings, redis)
    try:
        assert ports.operators == {"discord:1", "telegram:2"}
        await ports.training.pause("discord:1")
        assert await training_paused(redis) is True
        await ports.store.ban("discord", "x", "", "discord:1", NOW)
        assert await store.ban_of("discord", "x") is not None
        # The store works on the front end's database file.
        assert settings.database_path.is_file()
    finally:
        await store.close()
        await redis.aclose()
