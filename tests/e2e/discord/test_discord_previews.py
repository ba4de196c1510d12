"""Training previews on Discord reach the style's owner privately, never the channel.

The real discord.py client against the fake Discord, the real core, SQLite, Redis,
an arq worker and the tiny model, training with a preview every few steps.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from typing import Any

import pytest
from PIL import Image
from tests.e2e.discord.conftest import StartWorker
from tests.e2e.discord.test_discord_bot import (
    CB_DEFERRED,
    CB_DEFERRED_UPDATE,
    EPHEMERAL,
    JOB_TIMEOUT_S,
    answer_consent,
    original_when,
    png,
)
from tests.fakes.discord_api import (
    FakeChannel,
    FakeDiscord,
    FakeFile,
    FakeGuild,
    FakeUser,
    SentInteraction,
)

from stylebot.bootstrap import FrontEnd, PngWatermarkReader
from stylebot.bot.core.mentions import spell
from stylebot.bot.core.replies import TRAINING_ENDED_PUBLICLY
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.bot.discord.render import discord_spelling, escape
from stylebot.queue.payloads import preview_output_id

#: What a group sees when a training ends, as this platform spells it.
ENDED_PUBLICLY = spell(TRAINING_ENDED_PUBLICLY, discord_spelling)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STEPS = 6
EVERY = 2
PREVIEW_STEPS = list(range(EVERY, STEPS, EVERY))  # the last step is the style itself


def preview_every_few_steps(frontend: FrontEnd) -> None:
    bot = frontend.bot
    train = dataclasses.replace(bot.policy.train, steps=STEPS, preview_every_steps=EVERY)
    bot.policy = dataclasses.replace(bot.policy, train=train)


async def confirm_training(
    fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel, who: FakeUser, name: str
) -> SentInteraction:
    """/train with two images, then a licence, the people answer and Confirm: the
    Confirm interaction, whose (ephemeral) response shows the training."""
    train = await fake.send_slash_command(
        guild.id,
        channel.id,
        who,
        "train",
        {
            "name": name,
            "image1": FakeFile("sunset.png", png((230, 120, 40))),
            "image2": FakeFile("dune.png", png((200, 160, 60))),
        },
    )
    assert (await train.callback()).json["type"] == CB_DEFERRED
    consent = await original_when(fake, train, lambda m: m["components"], "the consent request")
    assert consent["flags"] & EPHEMERAL
    confirm_id = await answer_consent(fake, int(consent["id"]), who, "own-work", "n", name)
    confirm = await fake.press_button(int(consent["id"]), confirm_id, who)
    assert (await confirm.callback()).json["type"] == CB_DEFERRED_UPDATE
    await original_when(fake, confirm, lambda m: "queued" in m["content"], "queued", 30)
    return confirm


def previews_in(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["content"].startswith("Preview of ")]


def preview_ids(fake: FakeDiscord, messages: list[dict[str, Any]]) -> list[str | None]:
    """The output id each preview's image carries in its watermark."""
    reader = PngWatermarkReader()
    ids = []
    for message in messages:
        (attachment,) = message["attachments"]
        ids.append(reader.read(fake.attachment_bytes(int(attachment["id"]))))
    return ids


async def previews_of_one_training(
    frontend: FrontEnd, fake: FakeDiscord, messages: list[dict[str, Any]]
) -> list[str]:
    """The previews' output ids (from their watermarks), checked to be the records
    of one training job's previews at PREVIEW_STEPS, in order."""
    ids = preview_ids(fake, messages)
    records = [await frontend.uow.outputs.get_output(i) for i in ids if i is not None]
    assert len(records) == len(PREVIEW_STEPS)
    (job_id,) = {r.job_id for r in records if r is not None}
    job = await frontend.uow.jobs.get_job(job_id)
    assert job is not None
    assert job.kind == "train"
    assert ids == [preview_output_id(job_id, step) for step in PREVIEW_STEPS]
    return [i for i in ids if i is not None]


async def test_previews_are_ephemeral_follow_ups_of_the_training_interaction(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    start_worker: StartWorker,
) -> None:
    preview_every_few_steps(frontend)
    await start_worker()
    confirm = await confirm_training(fake, guild, general, alice, "glow")
    done = await original_when(fake, confirm, lambda m: "is ready" in m["content"], "training")
    assert done["flags"] & EPHEMERAL

    follow_ups = previews_in(
        [
            r.json
            for r in fake.requests
            if r.method == "POST" and r.path.endswith(confirm.token) and r.status < 300
        ]
    )
    assert len(follow_ups) == len(PREVIEW_STEPS)
    assert all(body["flags"] & EPHEMERAL for body in follow_ups)
    # The picture of how training went (loss curve, previews) comes the same way.
    (report,) = [
        r.json
        for r in fake.requests
        if r.method == "POST"
        and r.path.endswith(confirm.token)
        and r.status < 300
        and r.json["content"].startswith("How glow trained")
    ]
    assert report["flags"] & EPHEMERAL
    (shown_report,) = [
        m for m in fake.channel_messages(general.id) if m["content"].startswith("How glow trained")
    ]
    (attachment,) = shown_report["attachments"]
    assert Image.open(io.BytesIO(fake.attachment_bytes(int(attachment["id"])))).width == 512
    assert all("components" not in body or not body["components"] for body in follow_ups)

    # In the channel they exist only as ephemeral messages: Alice alone sees them.
    shown = previews_in(fake.channel_messages(general.id))
    assert len(shown) == len(PREVIEW_STEPS)
    assert all(m["flags"] & EPHEMERAL for m in shown)
    assert all(int(m["interaction_metadata"]["user"]["id"]) == alice.id for m in shown)
    await previews_of_one_training(frontend, fake, shown)
    # Nothing was posted in the channel, and no DM was needed.
    assert not [r for r in fake.requests if r.path == f"/channels/{general.id}/messages"]
    assert fake.channel_messages(fake.dm_channel_id(alice)) == []


async def test_previews_go_by_dm_once_the_token_is_dead_never_to_the_channel(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    start_worker: StartWorker,
) -> None:
    preview_every_few_steps(frontend)
    confirm = await confirm_training(fake, guild, general, alice, "dusk")
    fake.expire_token(confirm.token)  # Discord's 15 minutes are over before training runs
    await start_worker()

    dm = fake.dm_channel_id(alice)
    await fake.wait_until(
        lambda: len(previews_in(fake.channel_messages(dm))) == len(PREVIEW_STEPS),
        timeout=JOB_TIMEOUT_S,
        what="the previews by DM",
    )
    await previews_of_one_training(frontend, fake, previews_in(fake.channel_messages(dm)))
    # The end of training follows them into the DMs: /train was private, so is its end.
    await fake.wait_until(
        lambda: any("is ready" in m["content"] for m in fake.channel_messages(dm)),
        timeout=JOB_TIMEOUT_S,
        what="the end of training",
    )
    seen_by_all = [m for m in fake.channel_messages(general.id) if not m["flags"] & EPHEMERAL]
    assert not any("dusk" in m["content"] for m in seen_by_all)
    # The follow-ups were tried and refused (dead token); the channel never got one.
    refused = [
        r
        for r in fake.requests
        if r.method == "POST" and r.path.endswith(confirm.token) and r.status == 404
    ]
    assert len(refused) == len(PREVIEW_STEPS) + 1  # and the training report's picture
    assert previews_in(fake.channel_messages(general.id)) == []
    assert not any("trained" in m["content"] for m in fake.channel_messages(general.id))
    assert any(m["content"].startswith("How dusk trained") for m in fake.channel_messages(dm))


async def test_with_dms_closed_previews_are_dropped_and_the_channel_learns_only_that_it_ended(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
    start_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice.accepts_dms = False
    preview_every_few_steps(frontend)
    confirm = await confirm_training(fake, guild, general, alice, "ember")
    fake.expire_token(confirm.token)
    await start_worker()

    def end_posts() -> list[dict[str, Any]]:
        return [m for m in fake.channel_messages(general.id) if "ended" in m["content"]]

    await fake.wait_until(lambda: bool(end_posts()), timeout=JOB_TIMEOUT_S, what="the end")
    (message,) = end_posts()
    # The private style's name (and how training went) stays the owner's: the channel
    # gets the core's neutral line with a mention, and nothing else names the style.
    assert message["content"].startswith(f"<@{alice.id}> ")
    assert message["content"].endswith(escape(ENDED_PUBLICLY))
    public = [m for m in fake.channel_messages(general.id) if not m["flags"] & EPHEMERAL]
    assert not any("ember" in m["content"] for m in public)
    assert not message["flags"] & EPHEMERAL  # a normal message: the token was dead
    # Each preview, the training report and the end tried the DMs and were refused;
    # no preview (nor the report) reached anyone.
    refused_dms = [r for r in fake.requests if r.status == 403 and r.response["code"] == 50007]
    assert len(refused_dms) == len(PREVIEW_STEPS) + 2
    # The bot's lines name the job, never the person: no Discord user id in them.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("stylebot")]
    assert any("not delivered" in line for line in ours)
    assert not [line for line in ours if str(alice.id) in line]
    assert previews_in(fake.channel_messages(general.id)) == []
    assert not any("trained" in m["content"] for m in fake.channel_messages(general.id))
