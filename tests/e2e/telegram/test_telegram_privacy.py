"""Private answers, long texts and odd names on Telegram, end to end.

What the core marks private (a member's style names, their jobs, what /forgetme would
take) never reaches a group: asked there, it goes to the asker's private chat and the
group reads a short note. Texts longer than a message come in several, none cut; a
question's outcome is never what is cut; and a "|" in a name cannot break a button.

The real python-telegram-bot Application against the fake Bot API (which refuses texts
over 4096 characters, as Telegram does), over the real core, SQLite and blob store.
"""

from __future__ import annotations

import pytest
from tests.e2e.telegram.conftest import ReadyStyle
from tests.e2e.telegram.test_telegram_admin import said
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.bot.telegram.render import MAX_TEXT_CHARS

pytestmark = pytest.mark.slow

SENT_PRIVATELY = "Ada, I sent you my answer in our private chat."


def texts(fake: FakeTelegram, chat: FakeChat) -> str:
    return "\n".join(m.text or "" for m in fake.sent_messages(chat))


async def test_styles_info_and_status_asked_in_a_group_go_to_the_private_chat(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    private = fake.private_chat(ada)  # Ada has pressed Start in a chat with the bot
    await ready_style(ada, "secret-ink", b"weights")

    for command, answer in (
        ("/styles", "- secret-ink (ready, yours)"),
        ("/style info secret-ink", "visibility: private"),
        ("/status", "You have no jobs queued or running."),
    ):
        assert await said(fake, group, ada, command) == SENT_PRIVATELY
        await fake.wait_for_sent(private, lambda m, answer=answer: answer in (m.text or ""))

    in_group = texts(fake, group)
    assert "secret-ink" not in in_group
    assert "no jobs" not in in_group

    # In the private chat itself the answer comes right there, as ever.
    listing = await said(fake, private, ada, "/styles")
    assert "- secret-ink (ready, yours)" in listing


async def test_a_private_answer_for_someone_the_bot_cannot_write_to_says_how_to_open_it(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    await ready_style(ada, "secret-ink", b"weights")  # Ada never started a chat with the bot

    hint = await said(fake, group, ada, "/styles")

    assert hint.startswith("Ada, my answer is for you only, so I send it in our private chat")
    assert telegram.application is not None
    assert f"@{telegram.application.bot.username}" in hint
    assert hint.endswith("press Start, then send /styles again.")
    assert "secret-ink" not in texts(fake, group)


async def test_forgetme_with_130_styles_shows_them_all_and_says_erased(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ready_style: ReadyStyle,
    ada: FakeUser,
) -> None:
    private = fake.private_chat(ada)
    names = [f"style-{n:03d}-with-a-long-name-x" for n in range(130)]
    for name in names:
        await ready_style(ada, name, b"weights")

    await fake.send_text(private, ada, "/forgetme")
    question = await fake.wait_for_sent(private, lambda m: bool(m.buttons), timeout=20.0)

    pages = fake.sent_messages(private)
    assert len(pages) > 1, "longer than one message, so several"
    assert all(len(m.text or "") <= MAX_TEXT_CHARS for m in pages)
    asked = "\n".join(m.text or "" for m in pages)
    assert asked.startswith("This erases everything of yours here: 130 style(s)")
    assert all(name in asked for name in names), "no name cut off"
    assert pages[-1].message_id == question.message_id, "the buttons come after the whole list"

    await fake.press_button(private, ada, question, f"ey|{ada.id}")
    erased = await fake.wait_for_sent(
        private, lambda m: m.message_id == question.message_id and not m.buttons, timeout=60.0
    )
    assert "Erased: 130 style(s)" in (erased.text or "")
    user = await frontend.uow.users.get_or_create_user("telegram", str(ada.id), "Ada")
    assert await frontend.uow.styles.find_style(user.id, names[0]) is None


async def test_a_bar_in_a_style_name_reaches_the_core_through_the_delete_button(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
) -> None:
    private = fake.private_chat(ada)
    await ready_style(ada, "ink", b"weights")

    await fake.send_text(private, ada, "/style delete ink|x")
    ask = await fake.wait_for_sent(private, lambda m: bool(m.buttons))
    (delete_data,) = [data for text, data in ask.buttons if text == "Delete it"]
    assert delete_data is not None

    answer = await fake.press_and_answer(private, ada, ask, delete_data)

    assert answer.get("text") != "This button no longer works."
    closed = await fake.wait_for_sent(
        private, lambda m: m.message_id == ask.message_id and not m.buttons
    )
    # The core saw the name as typed, and refused it: no such style was ever possible.
    assert "'ink|x' is not a valid style name" in (closed.text or "")
