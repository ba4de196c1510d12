"""``/admin optouts`` and ``/admin remove-optout`` on Discord: review /optout registrations.

Translation only; who may see or remove what is the core's decision
(stylebot.bot.core.optout_review). Answers are ephemeral, like every /admin answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from stylebot.bot.core.admin_commands import ListOptOuts, RemoveOptOuts
from stylebot.bot.core.admin_grammar import registration_ids
from stylebot.bot.core.replies import ErrorReply

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter


BAD_IDS = ErrorReply("Give registration ids as numbers, e.g. 12 15 (from /admin optouts).")


def install_optout_review(
    admin_group: app_commands.Group,
    adapter: DiscordAdapter,
    manages_server: Callable[[discord.Interaction[Any]], bool],
) -> None:
    """Add the two subcommands to the /admin group (``manages_server``: commands.py's)."""

    @admin_group.command(name="optouts", description="Review /optout registrations")
    @app_commands.describe(registrant="Only this registrant's (a code from a listing)")
    async def admin_optouts(
        interaction: discord.Interaction[Any], registrant: str | None = None
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = ListOptOuts(
            adapter.requester(interaction),
            registrant or None,
            manages_server=manages_server(interaction),
        )
        await adapter.run(interaction, command, ephemeral=True)

    @admin_group.command(
        name="remove-optout", description="Remove /optout registrations (recorded in the ledger)"
    )
    @app_commands.describe(
        ids="Registration ids from /admin optouts, separated by spaces",
        registrant="Or: every registration of this registrant (a code from a listing)",
        reason="Why (recorded)",
    )
    async def admin_remove_optout(
        interaction: discord.Interaction[Any],
        ids: str | None = None,
        registrant: str | None = None,
        reason: str | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        chosen = registration_ids(ids or "")
        if chosen is None:
            await adapter.respond(interaction, BAD_IDS, ephemeral=True)
            return
        command = RemoveOptOuts(
            adapter.requester(interaction),
            chosen,
            registrant or None,
            (reason or "").strip(),
            manages_server=manages_server(interaction),
        )
        await adapter.run(interaction, command, ephemeral=True)
