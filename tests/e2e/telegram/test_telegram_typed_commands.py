"""Typed commands on Telegram go through the core's one grammar (issue 15, point 4): the
words the console takes mean the same here, and Telegram's own old word order still
works. The real python-telegram-bot Application against the fake Bot API, over the real
core and SQLite."""

from __future__ import annotations

import pytest
from tests.e2e.telegram.conftest import ReadyStyle
from tests.e2e.telegram.test_telegram_admin import said
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.model import Visibility
from stylebot.bot.telegram.adapter import TelegramAdapter

pytestmark = pytest.mark.slow


async def visibility_of(frontend: FrontEnd, user: FakeUser, name: str) -> Visibility:
    owner = await frontend.uow.users.get_or_create_user("telegram", str(user.id), user.first_name)
    style = await frontend.uow.styles.find_style(owner.id, name)
    assert style is not None, name
    return style.visibility


@pytest.mark.parametrize("words", ["public ink", "ink public"])
async def test_share_public_takes_the_word_public_before_or_after_the_name(
    words: str,
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    await ready_style(ada, "ink", b"weights")

    answer = await said(fake, group, ada, f"/style share {words}")

    assert answer == "Style ink is now public: anyone can use it."
    assert await visibility_of(frontend, ada, "ink") is Visibility.PUBLIC


async def test_a_style_named_public_is_shared_by_its_name_alone(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    await ready_style(ada, "public", b"weights")

    answer = await said(fake, group, ada, "/style share public")

    assert answer == "Style public is now shared with the members here."
    assert await visibility_of(frontend, ada, "public") is Visibility.SERVER


async def test_more_words_than_the_grammar_takes_change_nothing(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    await ready_style(ada, "ink", b"weights")

    answer = await said(fake, group, ada, "/style share ink wash public")

    assert answer.startswith("⚠️ Use /style info|share|unshare|delete|export NAME")
    assert await visibility_of(frontend, ada, "ink") is Visibility.PRIVATE
