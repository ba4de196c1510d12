"""Auto-captioning on Telegram, end to end: /captions auto (the core's grammar) queues a
caption job a worker runs on a tiny random Florence-2 captioner, the suggestions come
back as a listing, /captions accept makes them the captions, and the style trains on
them under a consent that covers them. The real python-telegram-bot Application
against the fake Bot API, over the real core, SQLite, Redis and a worker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.e2e.telegram.test_telegram_captions import answer_to
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.tiny_captioners import captioning_engine, tiny_captioner_dir

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.captions import captions_digest
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.config import Settings
from stylebot.engine.runtime import StyleEngine

pytestmark = pytest.mark.slow
__all__ = ["captioning_engine", "tiny_captioner_dir"]  # fixtures


@pytest.fixture
def settings(settings: Settings, tiny_captioner_dir: Path) -> Settings:
    return settings.replace(captioner=str(tiny_captioner_dir))


async def test_suggested_captions_are_accepted_and_the_style_trains_on_them(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    settings: Settings,
    captioning_engine: StyleEngine,
    worker: None,
    one_torch_thread: None,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    chat = fake.private_chat(ada)
    for index, data in enumerate(samples[:2]):
        await fake.send_document(chat, ada, data, f"ref-{index}.png", "image/png")
        await fake.wait_for_sent(
            chat, lambda m, n=index + 1: f"{n} waiting for training" in (m.text or "")
        )
    user = await frontend.uow.users.get_or_create_user("telegram", str(ada.id), ada.first_name)

    await fake.send_text(chat, ada, "/captions auto")
    listing = await fake.wait_for_sent(
        chat, lambda m: "with suggestions:" in (m.text or ""), timeout=60.0
    )
    waiting = await frontend.uow.uploads.pending_uploads(user.id)
    suggestions = [u.suggested_caption for u in waiting]
    assert all(suggestions), listing.text
    assert [u.caption for u in waiting] == [None, None]  # only proposals, so far
    for number, text in enumerate(suggestions, start=1):
        assert (
            f"{number}. ref-{number - 1}.png: (none: the trigger alone) · suggested: “{text}”"
            in (listing.text or "")
        )

    accepted = await answer_to(fake, ada, await fake.send_text(chat, ada, "/captions accept"))
    assert "2 suggestion(s) accepted" in (accepted.text or "")
    assert [u.caption for u in await frontend.uow.uploads.pending_uploads(user.id)] == suggestions

    await fake.send_text(chat, ada, "/train warm")
    for step in ("cl", "cp", "cy"):
        data = f"{step}|{ada.id}|CC0-1.0" + ("" if step == "cl" else "|n")
        question = await fake.wait_for_sent(chat, lambda m, d=data: d in [b for _, b in m.buttons])
        await fake.press_button(chat, ada, question, data)
    await fake.wait_for_sent(chat, lambda m: "Style warm is ready" in (m.text or ""), timeout=180)

    style = await frontend.uow.styles.find_style(user.id, "warm")
    assert style is not None
    trained_on = await frontend.uow.uploads.style_uploads(style.id)
    assert [u.caption for u in trained_on] == suggestions
    with sqlite3.connect(settings.database_path) as db:
        [(agreed,)] = db.execute(
            "SELECT captions_sha256 FROM consents WHERE id = ?", (style.consent_id,)
        ).fetchall()
    assert agreed == captions_digest(trained_on)
