"""Results larger than a Discord message may carry still reach the member, whole; one
that no message can carry is answered with a message saying why.

The real discord.py client against the fake Discord, which refuses what Discord
refuses (10 files and 10 MiB of them a message). The results are noise PNGs of the
sizes docs/operations.md allows, stored and announced as a worker would (tests/support/
large_results.py): generating them with the tiny model would take minutes.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.discord.test_discord_bot import CB_DEFERRED, custom_ids, original_when
from tests.fakes import discord_limits
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeGuild, FakeUser, SentInteraction
from tests.support.large_results import finish_with_images, noise_png, unacknowledged_events

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import DiscordAdapter

pytestmark = pytest.mark.slow

TIMEOUT_S = 60.0


async def queue_imagine(
    fake: FakeDiscord,
    guild: FakeGuild,
    channel: FakeChannel,
    who: FakeUser,
    frontend: FrontEnd,
    count: int,
) -> tuple[SentInteraction, str]:
    """/imagine with `count` images, answered "queued"; returns it and the job's id."""
    sent = await fake.send_slash_command(
        guild.id, channel.id, who, "imagine", {"prompt": "a tall lighthouse", "count": count}
    )
    assert (await sent.callback()).json["type"] == CB_DEFERRED
    await original_when(fake, sent, lambda m: "tall lighthouse" in m["content"], "queued", 10)
    user = await frontend.uow.users.get_or_create_user("discord", str(who.id), who.username)
    [job] = await frontend.uow.jobs.active_jobs(user.id)
    return sent, job.id


def attachment_bytes(fake: FakeDiscord, messages: list[dict[str, Any]]) -> list[bytes]:
    return [fake.attachment_bytes(int(a["id"])) for m in messages for a in m["attachments"]]


def labels(messages: list[dict[str, Any]], action: str) -> list[str]:
    return [
        c["label"]
        for m in messages
        for row in m["components"]
        for c in row["components"]
        if c["label"].startswith(action)
    ]


async def test_four_large_portrait_results_arrive_whole_in_messages_discord_takes(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    sent, job_id = await queue_imagine(fake, guild, general, alice, frontend, 4)
    images = [noise_png(1024, 1536, seed) for seed in range(4)]
    assert sum(map(len, images)) > discord_limits.ATTACHMENTS_TOTAL_BYTES  # 18.9 MB
    await finish_with_images(frontend, job_id, images)

    followup = await sent.followup(0, timeout=TIMEOUT_S)
    original = sent.original_message()
    assert original is not None
    messages = [original, fake.messages[int(followup.response["id"])]]
    # Every PNG arrives byte for byte (its provenance with it), in order, none twice.
    assert attachment_bytes(fake, messages) == images
    for message in messages:
        sizes = [a["size"] for a in message["attachments"]]
        assert sum(sizes) <= discord_limits.ATTACHMENTS_TOTAL_BYTES
    # Each image keeps its buttons, numbered on across the messages.
    assert labels(messages, "Re-roll") == [f"Re-roll {n}" for n in range(1, 5)]
    assert len({i for m in messages for i in custom_ids(m)}) == 4 * 5
    refused = [r for r in fake.requests if r.status >= 400]
    assert refused == []
    assert await unacknowledged_events(frontend) == 0


async def test_large_results_posted_in_the_channel_arrive_whole_too(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    sent, job_id = await queue_imagine(fake, guild, general, alice, frontend, 4)
    fake.expire_token(sent.token)  # 15 minutes later: the result goes to the channel
    images = [noise_png(1024, 1536, seed) for seed in range(4)]
    await finish_with_images(frontend, job_id, images)

    def posted() -> list[dict[str, Any]]:
        return [m for m in fake.channel_messages(general.id) if "webhook_id" not in m]

    await fake.wait_until(
        lambda: len(attachment_bytes(fake, posted())) == 4, timeout=TIMEOUT_S, what="4 images"
    )
    assert attachment_bytes(fake, posted()) == images
    assert posted()[0]["content"].startswith(f"<@{alice.id}> ")
    assert labels(posted(), "Re-roll") == [f"Re-roll {n}" for n in range(1, 5)]
    assert await unacknowledged_events(frontend) == 0


async def test_a_result_no_message_can_carry_is_answered_with_why_and_acknowledged(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    sent, job_id = await queue_imagine(fake, guild, general, alice, frontend, 1)
    huge = noise_png(2048, 2048)  # 12.6 MB: more than one message may carry
    await finish_with_images(frontend, job_id, [huge])

    message = await original_when(
        fake, sent, lambda m: "could not be delivered" in m["content"], "why", TIMEOUT_S
    )
    assert "your image could not be delivered here" in message["content"]
    assert "more than the 10.0 MB Discord lets a bot attach" in message["content"]
    assert message["attachments"] == []
    assert await unacknowledged_events(frontend) == 0
    # Nothing was uploaded that Discord would refuse: the limits were checked first.
    assert [r for r in fake.requests if r.status >= 400] == []


async def test_a_follow_up_refused_once_is_sent_again_alone(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    """The first message of a result went, its follow-up was refused: the retry sends
    the follow-up only, where the first went, not the whole result in the channel."""
    frontend.retry_delays_s = (0.01,)
    sent, job_id = await queue_imagine(fake, guild, general, alice, frontend, 4)
    images = [noise_png(1024, 1536, seed) for seed in range(4)]
    fake.inject_error("POST", "/webhooks/", 403, 50001, "Missing Access")
    await finish_with_images(frontend, job_id, images)

    followup = await sent.followup(0, timeout=TIMEOUT_S)
    assert await unacknowledged_events(frontend) == 0
    original = sent.original_message()
    assert original is not None
    messages = [original, fake.messages[int(followup.response["id"])]]
    assert attachment_bytes(fake, messages) == images
    posted = [m for m in fake.channel_messages(general.id) if "webhook_id" not in m]
    assert attachment_bytes(fake, posted) == []  # nothing twice in the channel
