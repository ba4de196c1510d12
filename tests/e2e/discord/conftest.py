"""Fixtures for the Discord bot end to end: a fake Discord, its people, the real adapter.

The stack fixtures (`settings`, `frontend`, `tiny_engine`) come from
tests/e2e/conftest.py; these add the fake Discord server, a guild with two
members, and the real :class:`DiscordAdapter` connected to it, plus a worker
the test starts when it chooses (to expire a token before a job can finish).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeGuild, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.config import Settings

StartWorker = Callable[[], Awaitable[None]]


@pytest.fixture
def alice() -> FakeUser:
    return FakeUser(username="alice", global_name="Alice")


@pytest.fixture
def bob() -> FakeUser:
    return FakeUser(username="bob", global_name="Bob")


@pytest.fixture
def general() -> FakeChannel:
    return FakeChannel(name="general")


@pytest.fixture
def guild(alice: FakeUser, bob: FakeUser, general: FakeChannel) -> FakeGuild:
    return FakeGuild(name="Style Club", channels=[general], members=[alice, bob])


@pytest.fixture
async def fake(guild: FakeGuild) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(guilds=[guild]) as server:
        yield server
    assert server.unhandled == [], f"requests the fake does not serve: {server.unhandled!r}"


@pytest.fixture
def bot_errors() -> list[BaseException]:
    """Unexpected exceptions inside the adapter's interaction handling."""
    return []


@pytest.fixture
def discord_settings(settings: Settings, fake: FakeDiscord, guild: FakeGuild) -> Settings:
    return settings.replace(discord_token=fake.token, discord_guild_id=guild.id)


def new_adapter(
    frontend: FrontEnd, settings: Settings, errors: list[BaseException]
) -> DiscordAdapter:
    """An adapter wired like bootstrap does it, with a short guild wait for tests."""
    adapter = DiscordAdapter(
        frontend.bot, settings, guild_ready_timeout=0.05, on_error=errors.append
    )
    frontend.add_sink(adapter.platform, adapter.notify)
    frontend.start_delivery()
    return adapter


@pytest.fixture
async def discord_bot(
    frontend: FrontEnd, discord_settings: Settings, bot_errors: list[BaseException]
) -> AsyncIterator[DiscordAdapter]:
    adapter = new_adapter(frontend, discord_settings, bot_errors)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()
    assert bot_errors == [], f"errors inside the Discord adapter: {bot_errors!r}"


@pytest.fixture
async def start_worker(
    settings: Settings, frontend: FrontEnd, tiny_engine: Any
) -> AsyncIterator[StartWorker]:
    """Start the in-process arq worker when the test says so (stopped at teardown)."""
    from stylebot.queue.worker import build_worker

    running: list[tuple[Any, asyncio.Task[Any]]] = []

    async def start() -> None:
        worker = build_worker(
            settings, frontend.redis_url, handle_signals=False, engine=tiny_engine
        )
        running.append((worker, asyncio.create_task(worker.async_run())))

    yield start
    for worker, task in running:
        # Stopping lets a job that records its result finish, and arq record it.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
