"""Per-image captions on Telegram, end to end: each file's caption is its image's, the
member lists them with /captions and changes them by replying to the list, and the
trained style's export says what each image was captioned (the captions reached the
trainer). The real python-telegram-bot Application against the fake Bot API, over the
real core, SQLite, Redis and a worker training the tiny model."""

from __future__ import annotations

import json

import pytest
from tests.fakes.telegram_api import FakeTelegram, FakeUser, StoredMessage

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.names import trigger_phrase
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.engine.lora_files import read_safetensors_metadata

pytestmark = pytest.mark.slow


async def pending_captions(frontend: FrontEnd, user: FakeUser) -> list[str | None]:
    record = await frontend.uow.users.get_or_create_user("telegram", str(user.id), user.first_name)
    return [u.caption for u in await frontend.uow.uploads.pending_uploads(record.id)]


async def answer_to(fake: FakeTelegram, user: FakeUser, sent: StoredMessage) -> StoredMessage:
    return await fake.wait_for_sent(
        fake.private_chat(user),
        lambda m: (m.api.get("reply_to_message") or {}).get("message_id") == sent.message_id,
        timeout=20.0,
    )


async def test_captions_come_with_the_files_are_edited_by_reply_and_reach_the_export(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    worker: None,
    one_torch_thread: None,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    chat = fake.private_chat(ada)
    captions = ("neon city, night", None, "/train warm")
    for index, (data, caption) in enumerate(zip(samples, captions, strict=True)):
        await fake.send_document(chat, ada, data, f"ref-{index}.png", "image/png", caption)
        await fake.wait_for_sent(
            chat, lambda m, n=index + 1: f"{n} waiting for training" in (m.text or "")
        )
    # A command caption names the style; it does not describe the picture.
    assert await pending_captions(frontend, ada) == ["neon city, night", None, None]

    asked = await fake.send_text(chat, ada, "/captions")
    listing = await answer_to(fake, ada, asked)
    assert "1. ref-0.png: neon city, night" in (listing.text or "")
    assert "2. ref-1.png: (none" in (listing.text or "")

    edit = await fake.reply(chat, ada, listing, "2 a quiet harbour, fog\n3 night")
    answered = await answer_to(fake, ada, edit)
    assert "a quiet harbour, fog" in (answered.text or "")
    assert await pending_captions(frontend, ada) == [
        "neon city, night",
        "a quiet harbour, fog",
        "night",
    ]
    # A line of another shape changes nothing and says how to write it.
    wrong = await fake.reply(chat, ada, listing, "a caption without its number")
    assert "after the image's number" in ((await answer_to(fake, ada, wrong)).text or "")

    await fake.send_text(chat, ada, "/train warm")
    question = await fake.wait_for_sent(
        chat, lambda m: f"cl|{ada.id}|CC0-1.0" in [d for _, d in m.buttons]
    )
    await fake.press_button(chat, ada, question, f"cl|{ada.id}|CC0-1.0")
    question = await fake.wait_for_sent(
        chat, lambda m: f"cp|{ada.id}|CC0-1.0|n" in [d for _, d in m.buttons]
    )
    await fake.press_button(chat, ada, question, f"cp|{ada.id}|CC0-1.0|n")
    question = await fake.wait_for_sent(
        chat, lambda m: f"cy|{ada.id}|CC0-1.0|n" in [d for _, d in m.buttons]
    )
    await fake.press_button(chat, ada, question, f"cy|{ada.id}|CC0-1.0|n")
    await fake.wait_for_sent(chat, lambda m: "Style warm is ready" in (m.text or ""), timeout=180)

    await fake.send_text(chat, ada, "/style export warm")
    exported = await fake.wait_for_sent(chat, lambda m: m.document is not None, timeout=20)
    assert exported.document_bytes is not None
    meta = read_safetensors_metadata(exported.document_bytes)
    [(folder, tags)] = json.loads(meta["ss_tag_frequency"]).items()
    trigger = trigger_phrase("warm")
    assert folder.endswith(f"_{trigger}")  # kohya's "<repeats>_<trigger>" folder
    assert tags == {
        trigger: 3,
        "neon city": 1,
        "night": 2,
        "a quiet harbour": 1,
        "fog": 1,
    }

    # The style's captions stay readable to its owner.
    shown = await fake.send_text(chat, ada, "/captions warm")
    assert "2. ref-1.png: a quiet harbour, fog" in ((await answer_to(fake, ada, shown)).text or "")
