"""Fixtures for the Telegram front end end to end: the fake Bot API, its people and chats,
and the real adapter started on the stack of tests/e2e/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser
from tests.support.records import add_ready_style

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.config import Settings

TOKEN = "7654321:stylebot-e2e_token"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024

#: ``await ready_style(user, name, weights)``: a style of ``user`` that finished training.
ReadyStyle = Callable[[FakeUser, str, bytes], Awaitable[None]]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _local_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the fake Bot API is local. PTB_TIMEDELTA is what the
    adapter opts in to; set here so the test leaves the environment as it found it."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The stack's settings with a Telegram token and a small upload limit to test against."""
    return settings.replace(telegram_token=TOKEN, max_upload_bytes=MAX_UPLOAD_BYTES)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
async def telegram(
    fake: FakeTelegram, frontend: FrontEnd, settings: Settings
) -> AsyncIterator[TelegramAdapter]:
    """The adapter as `stylebot run` wires it: started, and the sink for telegram jobs."""
    adapter = TelegramAdapter(
        frontend.bot,
        settings,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        album_quiet_s=0.4,
        poll_timeout_s=1.0,
    )
    frontend.add_sink(adapter.platform, adapter.notify)
    await adapter.start()
    frontend.start_delivery()
    yield adapter
    await adapter.stop()


@pytest.fixture
def ada(fake: FakeTelegram) -> FakeUser:
    return fake.user(id=1001, first_name="Ada", username="ada")


@pytest.fixture
def bob(fake: FakeTelegram) -> FakeUser:
    return fake.user(id=2002, first_name="Bob", username="bob")


@pytest.fixture
def group(fake: FakeTelegram) -> FakeChat:
    return fake.group_chat(id=-1001234567890, title="Artists")


@pytest.fixture
def samples(tmp_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in make_sample_images(tmp_path / "refs", 3, size=128)]


@pytest.fixture
def ready_style(frontend: FrontEnd) -> ReadyStyle:
    """Puts a trained style in the records (training itself is tested elsewhere), with
    ``weights`` as its LoRA file, for tests about what the bot does with one."""

    async def make(user: FakeUser, name: str, weights: bytes) -> None:
        await add_ready_style(frontend, "telegram", str(user.id), user.first_name, name, weights)

    return make
