"""When things go wrong on Telegram's side or ours, the user still hears of it, end to end:
the real python-telegram-bot Application against the fake Bot API, over the real core,
SQLite and embedded Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time

import pytest
from tests.e2e.telegram.conftest import ReadyStyle
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.large_results import noise_png

from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImageFile, ImagesReady, Notification
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.bot.telegram.photos import photo_to_show
from stylebot.bot.telegram.render import SORRY
from stylebot.config import Settings

pytestmark = pytest.mark.slow


def fail_style_deletes(settings: Settings) -> None:
    """Make SQLite refuse to delete any style, as a broken database would: the core's
    DeleteStyle then raises."""
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        db.execute(
            "CREATE TRIGGER no_style_deletes BEFORE DELETE ON styles "
            "BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
        )
        db.commit()


async def test_an_error_after_the_button_was_answered_is_said_in_the_chat(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    settings: Settings,
    ready_style: ReadyStyle,
    ada: FakeUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Delete answers the press at once (the core may take a while); when the core then
    fails, Telegram takes no second answer, so the apology comes as a message."""
    caplog.set_level(logging.INFO)
    private = fake.private_chat(ada)
    await ready_style(ada, "ink", b"weights")
    fake.flood("sendMessage", retry_after=1)  # the question waits out a flood wait first
    await fake.send_text(private, ada, "/style delete ink")
    question = await fake.wait_for_sent(private, lambda m: bool(m.buttons))
    (delete,) = [data for label, data in question.buttons if label == "Delete it"]
    assert delete is not None
    fail_style_deletes(settings)

    query = await fake.press_button(private, ada, question, delete)

    sorry = await fake.wait_for_sent(private, lambda m: m.text == SORRY)
    assert sorry.api["reply_to_message"]["message_id"] == question.message_id
    assert fake.callback_answer(query) is not None  # the one answer, given before the core ran
    answers = [
        c for c in fake.calls("answerCallbackQuery") if c.params["callback_query_id"] == query
    ]
    assert [c.http_status for c in answers] == [200]  # no second answer was tried
    # The flood wait and the failure are logged without naming the chat: a private
    # chat's id is Ada's Telegram user id.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("stylebot")]
    assert any("flood control" in line for line in ours), ours
    assert not [line for line in ours if str(ada.id) in line]


async def test_a_result_for_a_group_that_became_a_supergroup_arrives_there(
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    ada: FakeUser,
    samples: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = fake.group_chat(-4242, "Sketchers")  # a basic group
    await fake.send_text(group, ada, "/styles")
    await fake.wait_for_sent(group)
    supergroup = fake.migrate_group(group, -1004242)
    to = Requester("telegram", str(ada.id), "Ada", str(group.id), server_id=str(group.id))
    result = ImagesReady(
        "Here you are (seed 1).", "generate-1", (ImageFile("0123456789ab", "a.png", samples[0]),)
    )

    with caplog.at_level(logging.WARNING, logger="stylebot.bot.telegram"):
        await telegram.notify(Notification(to, result))

    status, photo, document = fake.sent_messages(supergroup)
    assert status.text == "Here you are (seed 1)."
    assert photo.photo, "the image to look at"
    assert document.document_bytes == samples[0]
    refused = [c for c in fake.requests if c.params.get("chat_id") == group.id and not c.ok]
    assert [c.response["parameters"] for c in refused] == [{"migrate_to_chat_id": supergroup.id}]
    (warning,) = [r for r in caplog.records if "supergroup" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert str(supergroup.id) in warning.getMessage()
    assert "not re-mapped" in warning.getMessage()


async def test_an_image_refused_as_a_photo_goes_as_a_file_and_the_rest_follow(
    fake: FakeTelegram, telegram: TelegramAdapter, ada: FakeUser
) -> None:
    """Telegram failing to make a photo of one image (IMAGE_PROCESS_FAILED) loses neither
    that image nor the ones after it: its file carries the buttons instead."""
    private = fake.private_chat(ada)
    images = [noise_png(64, 64, seed) for seed in range(3)]
    to = Requester("telegram", str(ada.id), "Ada", str(private.id))
    result = ImagesReady(
        "Here you are.",
        "generate-2",
        tuple(ImageFile(f"out{n}", f"{n}.png", data) for n, data in enumerate(images)),
    )
    fake.refuse("sendPhoto", "IMAGE_PROCESS_FAILED", skip=1)

    await telegram.notify(Notification(to, result))

    sent = fake.sent_messages(private)
    assert [m.document_bytes for m in sent if m.document] == images
    assert len([m for m in sent if m.photo]) == 2
    [refused_one] = [m for m in sent if m.document_bytes == images[1]]
    assert refused_one.buttons, "the file carries the buttons its photo would have"
    assert not [m for m in sent if m.document_bytes != images[1] and m.document and m.buttons]


async def test_a_large_result_is_previewed_off_the_event_loop(
    fake: FakeTelegram, telegram: TelegramAdapter, ada: FakeUser
) -> None:
    """A PNG over the photo limit is shown through a JPEG preview; making it (decode,
    resize, encode) must not stall every other chat's updates meanwhile."""
    private = fake.private_chat(ada)
    large = noise_png(3072, 3072)  # about 28 MB: over the 10 MB a photo may be
    started = time.perf_counter()
    assert photo_to_show(large) != large
    preview_s = time.perf_counter() - started
    to = Requester("telegram", str(ada.id), "Ada", str(private.id))
    result = ImagesReady("Here.", "generate-3", (ImageFile("big", "big.png", large),))
    longest_stall = 0.0

    async def heartbeat() -> None:
        """The longest the loop stood still until the photo reached the fake (which
        runs on this loop too, and re-encodes what it gets: not ours to time)."""
        nonlocal longest_stall
        loop = asyncio.get_running_loop()
        while not fake.calls("sendPhoto"):
            before = loop.time()
            await asyncio.sleep(0.005)
            longest_stall = max(longest_stall, loop.time() - before)

    beating = asyncio.create_task(heartbeat())
    try:
        await telegram.notify(Notification(to, result))
    finally:
        beating.cancel()

    assert [m for m in fake.sent_messages(private) if m.photo]
    # The fake's own work on the photo stalls the loop a little (a tenth of a second).
    assert longest_stall < preview_s * 0.75, (longest_stall, preview_s)
