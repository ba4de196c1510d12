"""Per-image captions on Discord, end to end: the context menu takes a message's text as
its images' captions, /train's `caption` option captions its images, and /captions lists
them with Edit buttons whose modal changes them, for their owner only. The real
discord.py client against the fake Discord, over the real core and SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.discord.test_discord_bot import (
    CB_MODAL,
    custom_ids,
    discord_user,
    original_when,
    png,
)
from tests.fakes.discord_api import FakeChannel, FakeDiscord, FakeFile, FakeGuild, FakeUser

from stylebot.bootstrap import FrontEnd
from stylebot.bot.discord.adapter import DiscordAdapter

pytestmark = pytest.mark.slow


async def pending_captions(frontend: FrontEnd, who: FakeUser) -> list[str | None]:
    user = await discord_user(frontend, who)
    return [u.caption for u in await frontend.uow.uploads.pending_uploads(user.id)]


def modal_inputs(modal: dict[str, Any]) -> dict[str, str]:
    """Each text input of a modal (by custom_id) with the value it was opened with."""
    inputs: dict[str, str] = {}
    for row in modal["components"]:
        for component in row.get("components", [row.get("component", {})]):
            if component.get("custom_id"):
                inputs[component["custom_id"]] = component.get("value", "")
    return inputs


async def test_captions_come_from_the_message_and_the_option_and_change_in_a_modal(
    fake: FakeDiscord,
    guild: FakeGuild,
    general: FakeChannel,
    alice: FakeUser,
    bob: FakeUser,
    frontend: FrontEnd,
    discord_bot: DiscordAdapter,
) -> None:
    posted = await fake.send_user_message(
        general.id,
        alice,
        "neon city, night",
        files=[FakeFile("a.png", png((40, 40, 40))), FakeFile("b.png", png((90, 20, 20)))],
    )
    added = await fake.send_message_command(
        guild.id, general.id, alice, "Add images to a style", int(posted["id"])
    )
    await added.callback()
    await original_when(fake, added, lambda m: m["components"], "consent", 10)
    trained = await fake.send_slash_command(
        guild.id,
        general.id,
        alice,
        "train",
        {"name": "ink", "image1": FakeFile("c.png", png((5, 90, 5))), "caption": "fog, dawn"},
    )
    await trained.callback()
    await original_when(fake, trained, lambda m: m["components"], "consent", 10)
    assert await pending_captions(frontend, alice) == [
        "neon city, night",
        "neon city, night",
        "fog, dawn",
    ]

    listed = await fake.send_slash_command(guild.id, general.id, alice, "captions", {})
    await listed.callback()
    listing = await original_when(fake, listed, lambda m: m["components"], "the listing", 10)
    # Discord escapes the list's numbers ("1\\."), so no markdown list forms.
    assert "a.png: neon city, night" in listing["content"]
    assert "c.png: fog, dawn" in listing["content"]
    assert custom_ids(listing) == [f"sb:captions:{alice.id}:1"]

    # Only the owner edits: Bob's press is answered with a notice, and no modal.
    pressed_by_bob = await fake.press_button(int(listing["id"]), f"sb:captions:{alice.id}:1", bob)
    assert (await pressed_by_bob.callback()).json["type"] != CB_MODAL

    pressed = await fake.press_button(int(listing["id"]), f"sb:captions:{alice.id}:1", alice)
    assert (await pressed.callback()).json["type"] == CB_MODAL
    modal = pressed.modal()
    assert modal is not None
    assert modal_inputs(modal) == {
        "caption-1": "neon city, night",
        "caption-2": "neon city, night",
        "caption-3": "fog, dawn",
    }
    submitted = await fake.submit_modal(
        pressed,
        {"caption-1": "neon city, night", "caption-2": "a red door", "caption-3": ""},
    )
    answer = await submitted.followup()
    assert "a red door" in answer.json["content"]
    assert await pending_captions(frontend, alice) == ["neon city, night", "a red door", None]
