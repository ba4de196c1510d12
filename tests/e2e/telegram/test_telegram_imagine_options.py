"""Typed /imagine options on Telegram reach the core: a shape instead of a size.

The real python-telegram-bot Application against the fake Bot API, over the real core
and SQLite; no worker runs, so the request stays queued where the test reads it.
"""

from __future__ import annotations

import pytest
from tests.fakes.telegram_api import FakeChat, FakeTelegram, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.generation import aspect_size
from stylebot.bot.telegram.adapter import TelegramAdapter

pytestmark = pytest.mark.slow


async def test_imagine_with_a_shape_queues_that_shape(
    fake: FakeTelegram, telegram: TelegramAdapter, frontend: FrontEnd, ada: FakeUser
) -> None:
    private: FakeChat = fake.private_chat(ada)
    await fake.send_text(private, ada, "/imagine a tall tower aspect:portrait seed:4")
    await fake.wait_for_sent(private, lambda m: "a tall tower" in (m.text or ""), timeout=20)

    user = await frontend.uow.users.get_or_create_user("telegram", str(ada.id), "Ada")
    (job,) = await frontend.uow.jobs.active_jobs(user.id)
    (output,) = await frontend.uow.outputs.job_outputs(job.id)
    policy = frontend.bot.policy
    assert (output.width, output.height) == aspect_size(
        "portrait", policy.default_size, policy.max_size
    )
    assert output.height > output.width

    await fake.send_text(private, ada, "/imagine a tall tower aspect:round")
    refusal = await fake.wait_for_sent(
        private, lambda m: "aspect is one of" in (m.text or ""), timeout=20
    )
    assert "square, portrait, landscape" in (refusal.text or "")
