"""The bot's buttons under results and on the /forget-me question, what they do, and every
component class the client registers (consent ones in consent_views.py, the base in
components.py).

custom_ids (Discord allows 100 characters), besides the consent question's:

- ``sb:<reroll|vary|upscale|info|delete>:<output_id>``  the buttons under a result image
- ``sb:erase:<user_id>`` / ``sb:keep:<user_id>``  confirm or cancel /forget-me
- ``sb:captions:<user_id>:<first>``  edit the captions of waiting images (caption_views.py)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

import discord

from stylebot.bot.core.commands import (
    DeleteOutput,
    EraseMyData,
    ExtendOutput,
    OutputInfo,
    RerollOutput,
    UpscaleOutput,
    VaryOutput,
)
from stylebot.bot.core.replies import ErrorReply
from stylebot.bot.discord.caption_views import (
    CaptionsActionButton,
    EditCaptionsButton,
)
from stylebot.bot.discord.components import OwnedItem, StatefulItem, adapter_of
from stylebot.bot.discord.consent_views import CONSENT_ITEMS
from stylebot.bot.discord.render import render

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

log = logging.getLogger(__name__)


# -- erasure ------------------------------------------------------------------


class ErasureButton(
    OwnedItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:(?P<answer>erase|keep):(?P<user_id>[0-9]+)",
):
    """Confirms /forget-me (the core erases everything of the user's) or cancels it
    (nothing reaches the core)."""

    hint = "To erase your own data, use /forget-me."

    def __init__(self, user_id: int, erase: bool) -> None:
        self.user_id = user_id
        self.erase = erase
        super().__init__(
            discord.ui.Button(
                label="Confirm: erase everything" if erase else "Cancel",
                style=discord.ButtonStyle.danger if erase else discord.ButtonStyle.secondary,
                custom_id=f"sb:{'erase' if erase else 'keep'}:{user_id}",
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(int(match["user_id"]), match["answer"] == "erase")

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        if self.erase:
            await erase_my_data(adapter, interaction)
        else:
            await interaction.response.edit_message(
                content="Nothing was erased.", embed=None, view=None
            )


def erasure_view(user_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ErasureButton(user_id, erase=True))
    view.add_item(ErasureButton(user_id, erase=False))
    return view


# -- results ------------------------------------------------------------------


class OutputAction(StrEnum):
    REROLL = "reroll"
    VARY = "vary"
    UPSCALE = "upscale"
    INFO = "info"
    DELETE = "delete"


_ACTION_LOOK: dict[OutputAction, tuple[str, str, discord.ButtonStyle]] = {
    OutputAction.REROLL: ("Re-roll", "\N{GAME DIE}", discord.ButtonStyle.primary),
    OutputAction.VARY: ("Variations", "\N{TWISTED RIGHTWARDS ARROWS}", discord.ButtonStyle.primary),
    OutputAction.UPSCALE: (
        "Upscale",
        "\N{SQUARED UP WITH EXCLAMATION MARK}",
        discord.ButtonStyle.primary,
    ),
    OutputAction.INFO: ("Info", "\N{INFORMATION SOURCE}", discord.ButtonStyle.secondary),
    OutputAction.DELETE: ("Delete", "\N{WASTEBASKET}", discord.ButtonStyle.danger),
}


class OutputButton(
    StatefulItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:(?P<action>reroll|vary|upscale|info|delete):(?P<output_id>[0-9a-zA-Z_-]+)",
):
    """One action on one generated image; who may do what is the core's decision."""

    def __init__(
        self,
        action: OutputAction,
        output_id: str,
        number: int | None = None,
        row: int | None = None,
    ) -> None:
        self.action = action
        self.output_id = output_id
        label, emoji, style = _ACTION_LOOK[action]
        super().__init__(
            discord.ui.Button(
                label=f"{label} {number}" if number else label,
                emoji=emoji,
                style=style,
                custom_id=f"sb:{action}:{output_id}",
                row=row,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(OutputAction(match["action"]), match["output_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # Anyone may press these: who may do what to the image is the core's decision.
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await output_action(adapter, interaction, self.action, self.output_id)


#: Extend buttons (stylebot.bot.core.extend.EXTENSIONS) and their labels.
_EXTEND_LOOK = {
    "zoom1.5": "Zoom out 1.5x",
    "zoom2": "Zoom out 2x",
    "square": "Make square",
    "portrait": "Make portrait",
}


class ExtendButton(
    StatefulItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:extend:(?P<how>zoom1\.5|zoom2|square|portrait):(?P<output_id>[0-9a-zA-Z_-]+)",
):
    """Extend one generated image (outpainting); who may is the core's decision."""

    def __init__(self, how: str, output_id: str, row: int | None = None) -> None:
        self.how = how
        self.output_id = output_id
        super().__init__(
            discord.ui.Button(
                label=_EXTEND_LOOK[how],
                style=discord.ButtonStyle.secondary,
                custom_id=f"sb:extend:{how}:{output_id}",
                row=row,
            )
        )

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        return cls(match["how"], match["output_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await adapter.defer(interaction, ephemeral=False)
            command = ExtendOutput(adapter.requester(interaction), self.output_id, self.how)
            await adapter.run(interaction, command, ephemeral=False)


def result_view(output_ids: Sequence[str], *, first_number: int = 1) -> discord.ui.View | None:
    """One row of buttons per image (Discord allows five rows), numbered when several;
    a result in several messages numbers on from ``first_number``. A single image also
    gets a row of Extend buttons (with several, the rows would run out)."""
    if not output_ids:
        return None
    view = discord.ui.View(timeout=None)
    numbered = len(output_ids) > 1 or first_number > 1
    for row, output_id in enumerate(output_ids[:5]):
        number = first_number + row if numbered else None
        for action in OutputAction:
            view.add_item(OutputButton(action, output_id, number, row=row))
    if len(output_ids) == 1 and not numbered:
        for how in _EXTEND_LOOK:
            view.add_item(ExtendButton(how, output_ids[0], row=1))
    return view


def output_ids_on(message: discord.Message | None) -> list[str]:
    """The output ids whose buttons a result message carries, in order."""
    found: list[str] = []
    for row in message.components if message else []:
        for child in getattr(row, "children", []):
            match = OutputButton.__discord_ui_compiled_template__.fullmatch(
                getattr(child, "custom_id", None) or ""
            )
            if match and match["output_id"] not in found:
                found.append(match["output_id"])
    return found


#: Registered with the client at start, so presses on old messages still work.
DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    *CONSENT_ITEMS,
    EditCaptionsButton,
    CaptionsActionButton,
    ErasureButton,
    OutputButton,
    ExtendButton,
)


# -- what the buttons do ------------------------------------------------------


async def erase_my_data(adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
    """/forget-me confirmed: the confirmation message becomes the core's answer."""
    await interaction.response.defer()
    reply = await adapter.bot.handle(EraseMyData(adapter.requester(interaction), confirmed=True))
    await interaction.edit_original_response(content=render(reply).short, embed=None, view=None)


async def output_action(
    adapter: DiscordAdapter,
    interaction: discord.Interaction[Any],
    action: OutputAction,
    output_id: str,
) -> None:
    """A button under a result image. New images appear as a new message."""
    requester = adapter.requester(interaction)
    match action:
        case OutputAction.REROLL:
            await adapter.defer(interaction, ephemeral=False)
            await adapter.run(interaction, RerollOutput(requester, output_id), ephemeral=False)
        case OutputAction.VARY:
            await adapter.defer(interaction, ephemeral=False)
            await adapter.run(interaction, VaryOutput(requester, output_id), ephemeral=False)
        case OutputAction.UPSCALE:
            await adapter.defer(interaction, ephemeral=False)
            await adapter.run(interaction, UpscaleOutput(requester, output_id), ephemeral=False)
        case OutputAction.INFO:
            await adapter.defer(interaction, ephemeral=True)
            await adapter.run(interaction, OutputInfo(requester, output_id), ephemeral=True)
        case OutputAction.DELETE:
            await interaction.response.defer()  # may edit the result message
            reply = await adapter.bot.handle(DeleteOutput(requester, output_id))
            if not isinstance(reply, ErrorReply):
                await _remove_image(interaction, output_id)
            await interaction.followup.send(render(reply).short, ephemeral=True)


async def _remove_image(interaction: discord.Interaction[Any], output_id: str) -> None:
    """Take a deleted image and its buttons off the result message."""
    message = interaction.message
    remaining = [o for o in output_ids_on(message) if o != output_id]
    kept = [a for a in (message.attachments if message else []) if output_id not in a.filename]
    try:
        if remaining:
            await interaction.edit_original_response(attachments=kept, view=result_view(remaining))
        else:
            await interaction.edit_original_response(
                content="This image was deleted by its maker.", attachments=[], view=None
            )
    except discord.HTTPException as exc:
        # The record is gone already; a stale message is cosmetic.
        log.warning("could not update the message of deleted output %s: %s", output_id, exc)
