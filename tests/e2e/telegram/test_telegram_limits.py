"""Results Telegram will not take as they are still reach the member: a PNG over what
Telegram takes as a photo is shown by a JPEG preview and follows whole, as a document;
one over what a bot may send at all is answered with a message saying why.

The real python-telegram-bot client against the fake Bot API, which refuses what
Telegram refuses (photos over 10 MB or 10000 px of sides, files over 50 MB). The results
are noise PNGs, stored and announced as a worker would (tests/support/large_results.py).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.large_results import finish_with_images, noise_png, unacknowledged_events

from stylebot.bootstrap import FrontEnd
from stylebot.bot.telegram.adapter import TelegramAdapter

pytestmark = pytest.mark.slow

TIMEOUT_S = 60.0


async def imagine(fake: FakeTelegram, frontend: FrontEnd, who: FakeUser) -> str:
    """/imagine in the user's private chat, answered "queued"; returns the job's id."""
    chat = fake.private_chat(who)
    await fake.send_text(chat, who, "/imagine a tall lighthouse")
    await fake.wait_for_sent(chat, lambda m: "lighthouse" in (m.text or ""), timeout=10)
    user = await frontend.uow.users.get_or_create_user("telegram", str(who.id), who.first_name)
    [job] = await frontend.uow.jobs.active_jobs(user.id)
    return job.id


async def test_a_png_over_the_photo_limit_is_previewed_and_follows_whole(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    job_id = await imagine(fake, frontend, ada)
    big = noise_png(2048, 2048)  # 12.6 MB: over sendPhoto's 10 MB
    await finish_with_images(frontend, job_id, [big])

    chat = fake.private_chat(ada)
    document = await fake.wait_for_sent(chat, lambda m: bool(m.document_bytes), TIMEOUT_S)
    assert document.document_bytes == big  # the original, provenance and all
    [photo] = [m for m in fake.sent_messages(chat) if m.photo]
    assert photo.buttons, "the preview carries the result's buttons"
    with Image.open(io.BytesIO(photo.photo_bytes or b"")) as shown:
        assert shown.size == (1280, 1280)
    assert [c.method for c in fake.requests if not c.ok] == []
    assert await unacknowledged_events(frontend) == 0


async def test_a_png_no_bot_may_send_is_answered_with_why_and_acknowledged(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    job_id = await imagine(fake, frontend, ada)
    huge = noise_png(4200, 4200)  # 50.5 MiB: over what a bot may send
    await finish_with_images(frontend, job_id, [huge])

    chat = fake.private_chat(ada)
    told = await fake.wait_for_sent(
        chat, lambda m: "could not be delivered" in (m.text or ""), TIMEOUT_S
    )
    assert "your image could not be delivered here" in (told.text or "")
    assert "more than the 50 MB Telegram lets a bot send" in (told.text or "")
    assert not any(m.photo or m.document_bytes for m in fake.sent_messages(chat))
    assert await unacknowledged_events(frontend) == 0


async def test_a_png_no_photo_can_show_comes_as_a_file_with_the_buttons(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    job_id = await imagine(fake, frontend, ada)
    strip = noise_png(4200, 200)  # 21:1, thinner than any photo Telegram takes
    await finish_with_images(frontend, job_id, [strip])

    chat = fake.private_chat(ada)
    document = await fake.wait_for_sent(chat, lambda m: bool(m.document_bytes), TIMEOUT_S)
    assert document.document_bytes == strip
    assert document.buttons, "the file carries the result's buttons"
    assert not any(m.photo for m in fake.sent_messages(chat))
    assert [c.method for c in fake.requests if not c.ok] == []
    assert await unacknowledged_events(frontend) == 0
