"""`/train NAME variant:KIND` on Telegram (issue 17): the adapter variant a member chose
before confirming their rights goes with the training that Confirm starts. The real
python-telegram-bot Application against the fake Bot API, over the real core, SQLite and
the embedded Redis the job is queued on."""

from __future__ import annotations

import pytest
from tests.e2e.telegram.test_telegram_bot import consent_question
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.queued_jobs import queued_train_jobs

from stylebot.bootstrap import FrontEnd
from stylebot.bot.telegram.adapter import TelegramAdapter

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("named", ["caption", "typed"])
async def test_the_variant_chosen_before_consent_trains(
    named: str,
    fake: FakeTelegram,
    telegram: TelegramAdapter,
    frontend: FrontEnd,
    ada: FakeUser,
    samples: list[bytes],
) -> None:
    chat = fake.private_chat(ada)
    caption = "/train ink variant:lokr" if named == "caption" else None
    await fake.send_album(chat, ada, samples, caption=caption)
    question = await consent_question(fake, chat)
    if named == "typed":  # while the question is open
        await fake.send_text(chat, ada, "/train ink variant:lokr")
        await fake.wait_for_sent(chat, lambda m: "training ink starts" in (m.text or ""))

    for pressed, next_button in (
        (f"cl|{ada.id}|own-work", f"cp|{ada.id}|own-work|n"),
        (f"cp|{ada.id}|own-work|n", f"cy|{ada.id}|own-work|n"),
    ):
        await fake.press_button(chat, ada, question, pressed)
        question = await fake.wait_for_sent(
            chat, lambda m, wanted=next_button: wanted in [d for _, d in m.buttons]
        )
    await fake.press_button(chat, ada, question, f"cy|{ada.id}|own-work|n")
    await fake.wait_for_sent(chat, lambda m: "Training ink on 3 image(s)" in (m.text or ""))

    jobs = await queued_train_jobs(frontend)
    assert [(job.style_name, job.settings.lora_variant) for job in jobs] == [("ink", "lokr")]
