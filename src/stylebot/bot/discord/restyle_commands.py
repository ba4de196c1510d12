"""``/restyle``, ``/extend``, ``/repaint``, ``/sketch`` and the "Restyle with…" and
"Follow this sketch" message context menus on Discord.

Translation only: the picture is the attachment (or the picked message's first image),
and the core decides the rest (stylebot.bot.core.restyle). The result is shown in the
channel like /imagine's; a refusal only to the asker.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from stylebot.bot.core.commands import Restyle
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.grammar import parse_restyle, strength_option
from stylebot.bot.core.replies import ErrorReply
from stylebot.bot.discord.components import AdmittedItem, adapter_of

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter


StyleAutocomplete = Callable[
    [discord.Interaction[Any], str], Coroutine[Any, Any, list[app_commands.Choice[str]]]
]
NO_PICTURE = ErrorReply("That message has no picture to restyle.")
# The core's EXTENSIONS, as a type discord.py turns into the option's choices.
Extension = Literal["zoom1.5", "zoom2", "square", "portrait"]
# FOLLOW_KINDS (the core says which ones this bot has).
Follow = Literal["edges", "depth"]


def _region(option: str) -> tuple[float, float, float, float]:
    """The typed grammar's reading of a region, so every platform reads it alike."""
    parsed = parse_restyle(option, "repaint")
    assert parsed.region is not None
    return parsed.region


def install_restyle_commands(
    tree: app_commands.CommandTree[Any], adapter: DiscordAdapter, style_names: StyleAutocomplete
) -> None:
    async def queue_restyle(
        interaction: discord.Interaction[Any],
        images: list[discord.Attachment],
        style: str,
        prompt: str | None,
        confirm: str | None,
        *,
        strength: float | None = None,
        extend: str | None = None,
        region: tuple[float, float, float, float] | None = None,
        follow: str | None = None,
    ) -> None:
        """The attachments fetched and checked, then the core's Restyle (a second
        attachment is the mask); the interaction is deferred already."""
        requester = adapter.requester(interaction)
        await adapter.run_on_files(
            interaction,
            images,
            lambda files: Restyle(
                requester,
                files[0],
                style,
                prompt=prompt or "",
                strength=strength,
                rights_confirmed=confirm == "yes",
                extend=extend,
                region=region,
                mask=files[1] if len(files) > 1 else None,
                follow=follow,
            ),
            ephemeral=False,
        )

    @tree.command(name="restyle", description="Draw a picture again in a style")
    @app_commands.describe(
        image="The picture (PNG, JPEG or WebP)",
        style="A style you may use here (yours, or one shared with this server)",
        prompt="What the picture shows, to guide the style (optional)",
        strength="How much is drawn again: 0.1 keeps nearly all, 1 keeps only the layout",
        confirm="yes: you made this picture or may use it (not needed for stylebot images)",
    )
    @app_commands.autocomplete(style=style_names)
    async def restyle(
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        style: str,
        prompt: str | None = None,
        strength: app_commands.Range[float, 0.05, 1.0] | None = None,
        confirm: Literal["yes"] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=False)
        await queue_restyle(interaction, [image], style, prompt, confirm, strength=strength)

    @tree.command(name="extend", description="Extend a picture: zoom out, or another shape")
    @app_commands.describe(
        image="The picture (PNG, JPEG or WebP)",
        style="A style you may use here, for the new area",
        how="Zoom out, or the shape to make it",
        prompt="What the picture shows, to guide the new area (optional)",
        confirm="yes: you made this picture or may use it (not needed for stylebot images)",
    )
    @app_commands.autocomplete(style=style_names)
    async def extend(
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        style: str,
        how: Extension = "zoom2",
        prompt: str | None = None,
        confirm: Literal["yes"] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=False)
        await queue_restyle(interaction, [image], style, prompt, confirm, extend=how)

    @tree.command(name="repaint", description="Draw part of a picture anew in a style")
    @app_commands.describe(
        image="The picture (PNG, JPEG or WebP)",
        style="A style you may use here",
        prompt="What to draw there",
        region="The region in percent: left,top,width,height (25,25,50,50: the middle)",
        mask="Or a mask image the picture's shape: white is drawn anew, black kept",
        confirm="yes: you made this picture or may use it (not needed for stylebot images)",
    )
    @app_commands.autocomplete(style=style_names)
    async def repaint(
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        style: str,
        prompt: str,
        region: str | None = None,
        mask: discord.Attachment | None = None,
        confirm: Literal["yes"] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=False)
        try:
            # Without a mask, the typed grammar's refusal of no region says what to give.
            box = None if mask is not None and region is None else _region(f"region:{region}")
        except CommandSyntaxError as error:
            await adapter.respond(interaction, ErrorReply(str(error)), ephemeral=False)
            return
        images = [image] if mask is None else [image, mask]
        await queue_restyle(interaction, images, style, prompt, confirm, region=box)

    @tree.command(name="sketch", description="Draw a prompt in a style along a picture's edges")
    @app_commands.describe(
        image="The sketch or picture to follow (PNG, JPEG or WebP)",
        style="A style you may use here",
        prompt="What to draw along it",
        follow="What to follow of the picture",
        strength="How closely it is followed: 0.05 loosely, 1 (the default) closely",
        confirm="yes: you made this picture or may use it (not needed for stylebot images)",
    )
    @app_commands.autocomplete(style=style_names)
    async def sketch(
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        style: str,
        prompt: str,
        follow: Follow = "edges",
        strength: app_commands.Range[float, 0.05, 1.0] | None = None,
        confirm: Literal["yes"] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=False)
        await queue_restyle(
            interaction, [image], style, prompt, confirm, strength=strength, follow=follow
        )

    @tree.context_menu(name="Restyle with…")
    async def restyle_message(
        interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        pictures = [a for a in message.attachments if (a.content_type or "").startswith("image/")]
        if not pictures:
            await adapter.defer(interaction, ephemeral=True)
            await adapter.respond(interaction, NO_PICTURE, ephemeral=True)
            return
        # The style (and the rest) is asked in a modal: a context menu has no options.
        await interaction.response.send_modal(RestyleModal(pictures[0]))

    @tree.context_menu(name="Follow this sketch")
    async def sketch_message(
        interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        pictures = [a for a in message.attachments if (a.content_type or "").startswith("image/")]
        if not pictures:
            await adapter.defer(interaction, ephemeral=True)
            await adapter.respond(interaction, NO_PICTURE, ephemeral=True)
            return
        await interaction.response.send_modal(SketchModal(pictures[0]))


class RestyleModal(AdmittedItem, discord.ui.Modal):
    """The style, prompt, strength and confirmation for "Restyle with…"."""

    style: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="Style", custom_id="sb:restyle:style", min_length=1, max_length=64
    )
    prompt: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="Prompt (optional)", custom_id="sb:restyle:prompt", required=False, max_length=500
    )
    strength: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="Strength, 0.05 to 1 (optional, default 0.6)",
        custom_id="sb:restyle:strength",
        required=False,
        max_length=5,
    )
    confirm: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="Type yes if you made it or may use it",
        placeholder="not needed for stylebot images",
        custom_id="sb:restyle:confirm",
        required=False,
        max_length=3,
    )

    # None: restyled; "edges": its edges followed (SketchModal).
    follow: str | None = None

    def __init__(self, picture: discord.Attachment, title: str = "Restyle this picture") -> None:
        super().__init__(title=title, custom_id="sb:restyle")
        self.picture = picture

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        adapter = adapter_of(interaction)
        async with adapter.guard(interaction):
            await adapter.defer(interaction, ephemeral=False)
            try:
                strength = strength_option(self.strength.value)
            except CommandSyntaxError as error:
                await adapter.respond(interaction, ErrorReply(str(error)), ephemeral=False)
                return
            requester = adapter.requester(interaction)
            await adapter.run_on_files(
                interaction,
                [self.picture],
                lambda files: Restyle(
                    requester,
                    files[0],
                    self.style.value.strip(),
                    prompt=self.prompt.value.strip(),
                    strength=strength,
                    rights_confirmed=self.confirm.value.strip().lower() == "yes",
                    follow=self.follow,
                ),
                ephemeral=False,
            )

    # This is Modal.on_error's signature (no `item`); see consent_views.NameModal.
    async def on_error(  # type: ignore[override]  # mypy checks it against BaseView.on_error
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await adapter_of(interaction).report_error(interaction, error)


class SketchModal(RestyleModal):
    """ "Follow this sketch": the same form, the prompt said to be what is drawn along the
    picture's edges, and the strength how closely (the core's default 1)."""

    follow = "edges"
    prompt: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="What to draw along it", custom_id="sb:restyle:prompt", max_length=500
    )
    strength: discord.ui.TextInput[RestyleModal] = discord.ui.TextInput(
        label="How closely, 0.05 to 1 (optional, default 1)",
        custom_id="sb:restyle:strength",
        required=False,
        max_length=5,
    )

    def __init__(self, picture: discord.Attachment) -> None:
        super().__init__(picture, title="Draw along this sketch's edges")
