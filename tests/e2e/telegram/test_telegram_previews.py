"""Training previews on Telegram reach the style's owner privately, never the group.

The real python-telegram-bot Application against the fake Bot API, the real core,
SQLite, Redis, an arq worker and the tiny model, training with a preview every few steps.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from tests.fakes.telegram_api import (
    AlbumDocument,
    FakeChat,
    FakeTelegram,
    FakeUser,
    RecordedCall,
    StoredMessage,
)

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.core.mentions import spell
from stylebot.bot.core.replies import TRAINING_ENDED_PUBLICLY
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.bot.telegram.render import telegram_spelling
from stylebot.queue.payloads import preview_output_id

#: What a group sees when a training ends, as this platform spells it.
ENDED_PUBLICLY = spell(TRAINING_ENDED_PUBLICLY, telegram_spelling)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STEPS = 6
EVERY = 2
PREVIEW_STEPS = list(range(EVERY, STEPS, EVERY))  # the last step is the style itself
TRAINING_TIMEOUT_S = 120.0


def preview_every_few_steps(frontend: FrontEnd) -> None:
    bot = frontend.bot
    train = dataclasses.replace(bot.policy.train, steps=STEPS, preview_every_steps=EVERY)
    bot.policy = dataclasses.replace(bot.policy, train=train)


async def train_in(
    fake: FakeTelegram, chat: FakeChat, who: FakeUser, name: str, samples: list[bytes]
) -> StoredMessage:
    """An album captioned /train NAME, consent through the buttons; returns the job's
    status message once it says the training ended (in a group, only that it ended:
    how it went is the owner's)."""
    documents = [AlbumDocument(data, f"ref-{i}.png", "image/png") for i, data in enumerate(samples)]
    await fake.send_album(chat, who, documents, caption=f"/train {name}")
    question = await fake.wait_for_sent(
        chat, lambda m: any(d and d.startswith("cy|") for _, d in m.buttons)
    )
    await fake.press_button(chat, who, question, f"cl|{who.id}|own-work")
    await fake.wait_for_sent(chat, lambda m: f"cy|{who.id}|own-work" in [d for _, d in m.buttons])
    await fake.press_button(chat, who, question, f"cp|{who.id}|own-work|n")
    await fake.wait_for_sent(chat, lambda m: f"cy|{who.id}|own-work|n" in [d for _, d in m.buttons])
    await fake.press_button(chat, who, question, f"cy|{who.id}|own-work|n")
    ended = ENDED_PUBLICLY if chat.type != "private" else f"Style {name} is ready"
    return await fake.wait_for_sent(
        chat, lambda m: ended in (m.text or ""), timeout=TRAINING_TIMEOUT_S
    )


def preview_photos(fake: FakeTelegram, chat_id: int) -> list[RecordedCall]:
    """sendPhoto calls for `chat_id` whose caption says it is a preview, in order."""
    return [
        call
        for call in fake.requests
        if call.method == "sendPhoto"
        and call.params.get("chat_id") == chat_id
        and str(call.params.get("caption", "")).startswith("Preview of ")
    ]


async def check_previews_of_one_training(frontend: FrontEnd, calls: list[RecordedCall]) -> None:
    """The uploaded PNGs carry the ids of one training job's previews at PREVIEW_STEPS."""
    reader = PngWatermarkReader()
    ids = [reader.read(call.files["photo"].data) for call in calls]
    first = await frontend.uow.outputs.get_output(ids[0] or "")
    assert first is not None
    job = await frontend.uow.jobs.get_job(first.job_id)
    assert job is not None
    assert job.kind == "train"
    assert ids == [preview_output_id(job.id, step) for step in PREVIEW_STEPS]
    for call, step in zip(calls, PREVIEW_STEPS, strict=True):
        assert f"step {step}/{STEPS}" in call.params["caption"]


def nothing_of_the_previews_in(fake: FakeTelegram, group: FakeChat) -> None:
    posted = fake.sent_messages(group)
    assert not [m for m in posted if m.photo_bytes is not None or m.document_bytes is not None]
    assert not [m for m in posted if "Preview of " in (m.text or m.caption or "")]


async def test_previews_from_a_group_go_to_the_owners_private_chat(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    worker: None,
    ada: FakeUser,
    group: FakeChat,
    samples: list[bytes],
) -> None:
    preview_every_few_steps(frontend)
    private = fake.private_chat(ada)  # Ada has pressed Start in a chat with the bot

    await train_in(fake, group, ada, "glow", samples)

    calls = preview_photos(fake, private.id)
    assert [call.ok for call in calls] == [True] * len(PREVIEW_STEPS)
    await check_previews_of_one_training(frontend, calls)
    shown = [m for m in fake.sent_messages(private) if (m.caption or "").startswith("Preview")]
    assert len(shown) == len(PREVIEW_STEPS)
    assert all(m.photo_bytes for m in shown)
    # The picture of how training went (loss curve, previews), privately too.
    (report,) = [m for m in fake.sent_messages(private) if "How glow trained" in (m.caption or "")]
    assert report.photo_bytes
    # The group saw the training's status, never a preview or a word about them.
    nothing_of_the_previews_in(fake, group)
    assert not [m for m in fake.sent_messages(group) if "private chat" in (m.text or "")]
    assert preview_photos(fake, group.id) == []


async def test_a_closed_private_chat_gets_the_group_one_hint_not_the_picture(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    worker: None,
    ada: FakeUser,
    group: FakeChat,
    samples: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    preview_every_few_steps(frontend)  # Ada never started a private chat with the bot

    await train_in(fake, group, ada, "dusk", samples)

    refused = preview_photos(fake, ada.id)
    assert [call.http_status for call in refused] == [400] * len(PREVIEW_STEPS)
    nothing_of_the_previews_in(fake, group)
    assert preview_photos(fake, group.id) == []
    (hint,) = [m for m in fake.sent_messages(group) if "private chat" in (m.text or "")]
    assert (hint.text or "").startswith("Ada, ")
    assert telegram.application is not None
    assert f"@{telegram.application.bot.username}" in (hint.text or "")
    assert "Start" in (hint.text or "")
    # The bot's lines name the job, never the person (a private chat's id is theirs too).
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("stylebot")]
    assert any("not sent privately" in line for line in ours)
    assert not [line for line in ours if str(ada.id) in line]


async def test_previews_in_a_private_chat_come_in_that_chat(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    worker: None,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    preview_every_few_steps(frontend)
    private = fake.private_chat(ada)

    await train_in(fake, private, ada, "calm", samples)

    calls = preview_photos(fake, private.id)
    await check_previews_of_one_training(frontend, calls)
