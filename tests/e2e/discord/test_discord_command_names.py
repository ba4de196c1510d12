"""Discord answers name Discord's commands (issue 15, point 4): the core's texts say which
command they mean, and Discord spells it as it has it, never a typed command it lacks
(/consent, /discard, /forgetme). The real discord.py client against the fake Discord,
the real core, SQLite and the blob store; the stored file is damaged on disk for real.
"""

from __future__ import annotations

import re

import discord
import pytest
from tests.e2e.discord.test_discord_bot import (
    CB_DEFERRED_UPDATE,
    EPHEMERAL,
    answer_consent,
    discord_user,
    png,
)
from tests.e2e.discord.test_discord_rights import train
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser
from tests.support.damage import flip_byte

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import DiscordAdapter

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

COMMAND_NAMED = re.compile(r"(?<![\w/.:<])/([a-z][a-z-]*)(?![\w/-])")


def registered_commands(adapter: DiscordAdapter) -> set[str]:
    """The slash commands the running adapter registered with Discord."""
    assert adapter.client is not None
    commands = adapter.client.tree.get_commands(type=discord.AppCommandType.chat_input)
    return {command.name for command in commands}


async def test_a_damaged_waiting_image_is_answered_with_discords_own_commands(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    consent = await train(fake, guild, general, alice, "ink", FakeFile("a.png", png((90, 40, 20))))
    owner = await discord_user(frontend, alice)
    (waiting,) = await frontend.uow.uploads.pending_uploads(owner.id)
    flip_byte(frontend.blobs.path(waiting.blob_key))

    message_id = int(consent["id"])
    confirm_id = await answer_consent(fake, message_id, alice, "own-work", "n", "ink")
    pressed = await fake.press_button(message_id, confirm_id, alice)
    assert (await pressed.callback()).json["type"] == CB_DEFERRED_UPDATE
    refusal = (await pressed.followup()).json

    assert refusal["flags"] == EPHEMERAL
    assert "damaged" in refusal["content"]
    assert "Cancel on the licence question" in refusal["content"]
    named = set(COMMAND_NAMED.findall(refusal["content"]))
    assert named <= registered_commands(discord_bot), named
    assert await frontend.uow.consents.latest_consent(owner.id) is None
