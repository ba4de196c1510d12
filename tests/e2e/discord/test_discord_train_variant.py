"""`/train variant:` on Discord (issue 17): the adapter variant chosen with the images
goes, through the consent question and Confirm, with the training job; a context menu has
no options, so its naming modal asks for one. The real discord.py client against the fake
Discord, over the real core, SQLite and the embedded Redis the job is queued on."""

from __future__ import annotations

import pytest
from tests.e2e.discord.test_discord_bot import (
    CB_MODAL,
    answer_consent,
    custom_ids,
    original_when,
    png,
)
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser
from tests.support.queued_jobs import queued_train_jobs

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import DiscordAdapter

pytestmark = pytest.mark.slow


async def test_the_variant_chosen_with_train_goes_with_the_job(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    sent = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "train",
        {"name": "ink", "variant": "lokr", "image1": FakeFile("ref.png", png((20, 60, 90)))},
    )
    await sent.callback()
    consent = await original_when(fake, sent, lambda m: m["components"], "consent", 10)
    assert custom_ids(consent)[0] == f"sb:licence:{alice.id}::ink:lokr"

    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "own-work", "n", "ink:lokr")
    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    await confirm.callback()
    await original_when(fake, confirm, lambda m: "Training ink" in m["content"], "queued", 10)

    jobs = await queued_train_jobs(frontend)
    assert [(job.style_name, job.settings.lora_variant) for job in jobs] == [("ink", "lokr")]


async def test_the_naming_modal_asks_for_the_variant_of_images_from_a_message(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    posted = await fake.send_user_message(
        general.id, alice, "my sketches", files=[FakeFile("sketch.png", png((40, 40, 40)))]
    )
    added = await fake.send_message_command(
        guild.id, general.id, alice, "Add images to a style", int(posted["id"])
    )
    await added.callback()
    consent = await original_when(fake, added, lambda m: m["components"], "consent", 10)
    confirm_id = await answer_consent(fake, int(consent["id"]), alice, "own-work", "n", "")

    confirm = await fake.press_button(int(consent["id"]), confirm_id, alice)
    assert (await confirm.callback()).json["type"] == CB_MODAL
    named = await fake.submit_modal(confirm, {"name": "sketchy", "variant": "DoRA"})
    await named.callback()
    await original_when(fake, named, lambda m: "Training sketchy" in m["content"], "queued", 10)

    jobs = await queued_train_jobs(frontend)
    assert [(job.style_name, job.settings.lora_variant) for job in jobs] == [("sketchy", "dora")]
