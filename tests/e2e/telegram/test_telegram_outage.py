"""A Telegram outage longer than the retries for refusals: results finished meanwhile
wait, uncounted and unacknowledged, and arrive once when Telegram is back. The real
python-telegram-bot client against the fake Bot API, which really stops answering."""

from __future__ import annotations

import asyncio

import pytest
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.large_results import finish_with_images, noise_png, unacknowledged_events

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import JobQueued
from stylebot.bot.telegram.adapter import TelegramAdapter
from stylebot.queue.events import FRONTEND_GROUP
from stylebot.queue.keys import EVENTS_STREAM

pytestmark = pytest.mark.slow

# Longer than the refusal retries take with the pauses below (the old code's window).
OUTAGE_S = 3.0


async def test_a_result_finished_during_an_outage_arrives_once_when_telegram_is_back(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    private = fake.private_chat(ada)
    frontend.retry_delays_s = (0.01,)  # refusals would use up their tries at once
    frontend.unreachable_backoff_s = (0.1, 0.4)
    telegram.sender.network_backoff_s = 0.02
    me = Requester("telegram", str(ada.id), "Ada", chat_id=str(private.id))
    queued = await frontend.bot.handle(Imagine(me, "a quiet harbour", seed=1, count=2))
    assert isinstance(queued, JobQueued), queued
    images = [noise_png(64, 64, 1), noise_png(64, 64, 2)]

    await fake.go_offline()
    await finish_with_images(frontend, queued.job_id, images)
    await asyncio.sleep(OUTAGE_S)
    [waiting] = await frontend.events.redis.xpending_range(
        EVENTS_STREAM, FRONTEND_GROUP, "-", "+", 10
    )
    assert await frontend.events.delivery_failures(waiting["message_id"].decode()) == 0
    await fake.come_back()

    def all_files_sent(_call: object) -> bool:
        return len([m for m in fake.sent_messages(private) if m.document]) == len(images)

    await fake.wait_for(all_files_sent, timeout=20)
    assert await unacknowledged_events(frontend) == 0
    sent = fake.sent_messages(private)
    assert sorted(m.document_bytes for m in sent if m.document) == sorted(images)
    assert len([m for m in sent if m.photo]) == len(images)
    assert not [m for m in sent if m.text and "could not be delivered" in m.text]


async def queued_result(frontend: FrontEnd, me: Requester, images: list[bytes]) -> None:
    queued = await frontend.bot.handle(Imagine(me, "a quiet harbour", seed=1, count=len(images)))
    assert isinstance(queued, JobQueued), queued
    await finish_with_images(frontend, queued.job_id, images)


async def test_a_retry_after_a_failure_half_way_sends_only_the_rest(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    private = fake.private_chat(ada)
    frontend.unreachable_backoff_s = (0.1, 0.4)
    telegram.sender.max_flood_waits = 0  # the rate limit on image 2 fails this try
    images = [noise_png(64, 64, seed) for seed in range(3)]
    fake.refuse("sendPhoto", "Too Many Requests: retry after 1", skip=1, retry_after=1)

    await queued_result(frontend, Requester("telegram", str(ada.id), "Ada", str(ada.id)), images)

    def all_files_sent(_call: object) -> bool:
        return len([m for m in fake.sent_messages(private) if m.document]) == len(images)

    await fake.wait_for(all_files_sent, timeout=20)
    assert await unacknowledged_events(frontend) == 0
    sent = fake.sent_messages(private)
    assert [m.document_bytes for m in sent if m.document] == images
    assert len([m for m in sent if m.photo]) == len(images)
    assert len([m for m in sent if m.text]) == 1, [m.text for m in sent]  # the status, once


async def test_the_notice_names_the_images_that_did_not_arrive(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    private = fake.private_chat(ada)
    images = [noise_png(64, 64, seed) for seed in range(3)]
    fake.refuse("sendDocument", "FILE_PARTS_INVALID", skip=1)

    await queued_result(frontend, Requester("telegram", str(ada.id), "Ada", str(ada.id)), images)

    notice = await fake.wait_for_sent(
        private, lambda m: bool(m.text and "could not be delivered" in m.text), timeout=20
    )
    assert notice.text is not None
    # Image 2's file refused: it and image 3 are missing, and named; image 1 is not.
    assert "2 of your 3 images (" in notice.text, notice.text
    assert [m.document_bytes for m in fake.sent_messages(private) if m.document] == [images[0]]
