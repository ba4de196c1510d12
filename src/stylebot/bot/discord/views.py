"""The bot's buttons under results and on the /forget-me question, and every component
class the client registers (consent ones in consent_views.py, the base in components.py).

custom_ids (Discord allows 100 characters), besides the consent question's:

- ``sb:<reroll|vary|info|delete>:<output_id>``  the buttons under a result image
- ``sb:erase:<user_id>`` / ``sb:keep:<user_id>``  confirm or cancel /forget-me
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

import discord

from stylebot.bot.discord.components import OwnedItem, StatefulItem, adapter_of
from stylebot.bot.discord.consent_views import CONSENT_ITEMS

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter


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
            await adapter.erase_my_data(interaction)
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
    INFO = "info"
    DELETE = "delete"


_ACTION_LOOK: dict[OutputAction, tuple[str, str, discord.ButtonStyle]] = {
    OutputAction.REROLL: ("Re-roll", "\N{GAME DIE}", discord.ButtonStyle.primary),
    OutputAction.VARY: ("Variations", "\N{TWISTED RIGHTWARDS ARROWS}", discord.ButtonStyle.primary),
    OutputAction.INFO: ("Info", "\N{INFORMATION SOURCE}", discord.ButtonStyle.secondary),
    OutputAction.DELETE: ("Delete", "\N{WASTEBASKET}", discord.ButtonStyle.danger),
}


class OutputButton(
    StatefulItem,
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"sb:(?P<action>reroll|vary|info|delete):(?P<output_id>[0-9a-zA-Z_-]+)",
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
            await adapter.output_action(interaction, self.action, self.output_id)


def result_view(output_ids: Sequence[str], *, first_number: int = 1) -> discord.ui.View | None:
    """One row of buttons per image (Discord allows five rows), numbered when several;
    a result in several messages numbers on from ``first_number``."""
    if not output_ids:
        return None
    view = discord.ui.View(timeout=None)
    numbered = len(output_ids) > 1 or first_number > 1
    for row, output_id in enumerate(output_ids[:5]):
        number = first_number + row if numbered else None
        for action in OutputAction:
            view.add_item(OutputButton(action, output_id, number, row=row))
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
    ErasureButton,
    OutputButton,
)
