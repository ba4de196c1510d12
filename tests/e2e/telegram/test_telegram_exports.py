"""`/style export` on Telegram, end to end: a style's weights reach its owner only, and a
file over the 50 MB a bot may send is refused with the numbers instead of uploaded again
and again.

The real python-telegram-bot Application against the fake Bot API, over the real core,
SQLite and the blob store. A trained style is put in the records directly (see the
``ready_style`` fixture): what matters here is where its file goes.
"""

from __future__ import annotations

import pytest
from tests.e2e.telegram.conftest import ReadyStyle
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser, StoredMessage

from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.bot.telegram.render import MAX_BOT_UPLOAD_BYTES

pytestmark = pytest.mark.slow

WEIGHTS = b"safetensors weights of ink " * 64
OVER_THE_LIMIT = MAX_BOT_UPLOAD_BYTES + 3 * 1024 * 1024  # 53 MB


async def answer_to(fake: FakeTelegram, chat: FakeChat, sent: StoredMessage) -> StoredMessage:
    """The bot's message answering `sent`."""
    return await fake.wait_for_sent(
        chat,
        lambda m: (m.api.get("reply_to_message") or {}).get("message_id") == sent.message_id,
        timeout=20.0,
    )


def documents_in(fake: FakeTelegram, chat: FakeChat | int) -> list[StoredMessage]:
    return [m for m in fake.sent_messages(chat) if m.document is not None]


async def test_an_export_asked_in_a_group_goes_to_the_owners_private_chat(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    private = fake.private_chat(ada)  # Ada has pressed Start in a chat with the bot
    await ready_style(ada, "ink", WEIGHTS)

    asked = await fake.send_text(group, ada, "/style export ink")

    note = await answer_to(fake, group, asked)
    assert note.text == "Ada, I sent you the style file in our private chat."
    (exported,) = documents_in(fake, private)
    assert exported.document_bytes == WEIGHTS
    assert exported.api["document"]["file_name"] == "ink.safetensors"
    # The group saw the note only: no weights, and no upload was even tried there.
    assert documents_in(fake, group) == []
    assert [c for c in fake.calls("sendDocument") if c.params.get("chat_id") == group.id] == []

    # In the private chat itself it stays as it was: the file answers the command there.
    asked_privately = await fake.send_text(private, ada, "/style export ink")
    again = await answer_to(fake, private, asked_privately)
    assert again.document_bytes == WEIGHTS


async def test_an_export_in_a_group_with_a_closed_private_chat_only_says_how_to_open_it(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
    group: FakeChat,
) -> None:
    await ready_style(ada, "ink", WEIGHTS)  # Ada never started a chat with the bot

    asked = await fake.send_text(group, ada, "/style export ink")

    hint = (await answer_to(fake, group, asked)).text or ""
    assert hint.startswith("Ada, the style file is for you only")
    assert telegram.application is not None
    assert f"@{telegram.application.bot.username}" in hint
    assert "press Start" in hint
    assert documents_in(fake, group) == []
    refused = fake.calls("sendDocument")
    assert [(c.params.get("chat_id"), c.http_status) for c in refused] == [(ada.id, 400)]


async def test_an_export_over_the_bot_upload_limit_is_refused_with_the_numbers(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
) -> None:
    private = fake.private_chat(ada)
    await ready_style(ada, "huge", b"\0" * OVER_THE_LIMIT)

    asked = await fake.send_text(private, ada, "/style export huge")

    refusal = (await answer_to(fake, private, asked)).text or ""
    assert refusal.startswith("⚠️ huge.safetensors is 53.0 MB")
    assert "at most 50 MB" in refusal
    assert "operator" in refusal
    assert fake.calls("sendDocument") == []  # refused before uploading anything


async def test_telegrams_413_for_a_file_is_final_and_explained(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ready_style: ReadyStyle,
    ada: FakeUser,
) -> None:
    """Should Telegram refuse a file the size check let through (its limit is its own), the
    413 is not retried: the same bytes would be refused again."""
    private = fake.private_chat(ada)
    await ready_style(ada, "huge", b"\0" * OVER_THE_LIMIT)
    assert telegram.handlers is not None
    telegram.handlers.chat.max_send_bytes = 2 * OVER_THE_LIMIT

    asked = await fake.send_text(private, ada, "/style export huge")

    refusal = (await answer_to(fake, private, asked)).text or ""
    assert refusal.startswith("⚠️ huge.safetensors is 53.0 MB")
    assert "at most 50 MB" in refusal
    assert [c.http_status for c in fake.calls("sendDocument")] == [413]
    assert documents_in(fake, private) == []
