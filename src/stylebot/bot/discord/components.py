"""What every button, select and modal of the bot shares: the adapter behind the
interaction, admission (so stop() waits for the handler), and one owner per component.

Every component is a :class:`discord.ui.DynamicItem`: the custom_id carries what the
press needs (who may press it, the licence chosen, the style name, the output id), and
the client registers the classes at start. So a button keeps working after the bot
restarts, with no view or database lookup to restore (discord.py's "persistent views"
with state in the custom_id). The callbacks only parse the custom_id, check the presser
and hand over to the adapter; no rules live here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Self, cast

import discord

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter


def adapter_of(interaction: discord.Interaction[Any]) -> DiscordAdapter:
    """The adapter behind the client that received this interaction."""
    adapter = getattr(interaction.client, "adapter", None)
    if adapter is None:
        raise RuntimeError("interaction reached a client without a stylebot adapter")
    return cast("DiscordAdapter", adapter)


class AdmittedItem:
    """Mixed into every component and modal: its interaction is admitted by the adapter,
    which tracks the handler so that stop() waits for it (and turns it away while stopping).
    discord.py calls interaction_check in the task that then runs the callback."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await adapter_of(interaction).admit(interaction)


class StatefulItem(AdmittedItem):
    """Mixed into a DynamicItem: rebuilt from its custom_id on a press (:meth:`from_match`)."""

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls.from_match(match, item)

    @classmethod
    def from_match(cls, match: re.Match[str], item: discord.ui.Item[Any]) -> Self:
        """The component a pressed custom_id stands for."""
        raise NotImplementedError


class OwnedItem(StatefulItem):
    """A component that belongs to one user (``user_id``, from its custom_id): a press by
    anyone else is answered with ``hint`` and changes nothing; the owner's press goes to
    :meth:`pressed`, with errors reported by the adapter."""

    user_id: int
    hint = "To train your own style, use /train."

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            if interaction.user.id != self.user_id:
                await interaction.response.send_message(
                    f"This is for <@{self.user_id}> only. {self.hint}",
                    ephemeral=True,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
                return
            await self.pressed(adapter, interaction)

    async def pressed(self, adapter: DiscordAdapter, interaction: discord.Interaction[Any]) -> None:
        raise NotImplementedError
