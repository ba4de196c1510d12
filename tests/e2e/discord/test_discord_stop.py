"""Stopping the Discord front end lets the interactions it is handling finish.

discord.py runs each interaction's handler as a task of its own; the front end
closes SQLite and Redis right after the adapter stops. So stop() must turn new
interactions away and wait for the running ones, or a /train caught half-way
loses its uploads and its user gets no answer.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import RESTARTING, DiscordAdapter

EPHEMERAL = 1 << 6
CB_MESSAGE, CB_DEFERRED = 4, 5


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_stop_waits_for_a_command_in_progress_and_turns_new_ones_away(
    fake: FakeDiscord,
    discord_bot: DiscordAdapter,
    frontend: FrontEnd,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    # A slow CDN: /train is caught after its acknowledgement, before its uploads are stored.
    cdn = fake.hold("GET", "/attachments/")
    try:
        train = await fake.send_slash_command(
            guild.id,
            general.id,
            alice,
            "train",
            {"name": "warm", "image1": FakeFile("sunset.png", png((230, 120, 40)))},
        )
        assert (await train.callback()).json["type"] == CB_DEFERRED
        await fake.wait_until(lambda: cdn.held > 0, timeout=10, what="the held download")

        stopping = asyncio.create_task(discord_bot.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done(), "stop() returned while /train was still being handled"

        # While stopping, a new command is answered, and not run.
        late = await fake.send_slash_command(guild.id, general.id, bob, "styles", {})
        refused = (await late.callback()).json
        assert refused["type"] == CB_MESSAGE
        assert refused["data"]["content"] == RESTARTING
        assert refused["data"]["flags"] & EPHEMERAL

        cdn.release()
        await asyncio.wait_for(stopping, timeout=30)
    finally:
        cdn.release()  # never leave the bot's download hanging

    # By the time stop() returned, /train had stored its upload and answered.
    owner = await frontend.uow.users.get_or_create_user("discord", str(alice.id), alice.username)
    assert len(await frontend.uow.uploads.pending_uploads(owner.id)) == 1
    answer = train.original_message()
    assert answer is not None
    assert answer["components"], "the consent request was not sent"
    assert "Before training" in answer["embeds"][0]["title"]
