"""The slash commands and the message context menu: Discord input -> core commands.

Each command acknowledges the interaction first (Discord allows 3 seconds),
then builds the core command and lets the adapter show the reply. Answers
that only concern the user are ephemeral; /imagine answers in the channel,
since that is where the community wants to see the images.

/admin is visible to everyone (no default_permissions): the bot's operator
may not manage the server they use it in, and the core refuses everyone
without authority with a clear reply. Discord's Manage Server permission is
what the adapter passes on as `manages_server`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from stylebot.bot.core import (
    CancelJob,
    DeleteStyle,
    ErrorReply,
    ExportStyle,
    Imagine,
    ListStyles,
    ShareStyle,
    ShowStatus,
    StyleChoices,
    StyleInfo,
    UnshareStyle,
    UploadImages,
    UsableStyles,
    Verify,
)
from stylebot.bot.core.admin import (
    AdminCommand,
    BanUser,
    PauseTraining,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.commands import EraseMyData, OptOut
from stylebot.bot.discord.optout_admin import install_optout_review

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

log = logging.getLogger(__name__)

# The core's ASPECTS, as a type discord.py turns into the option's choices.
Aspect = Literal["square", "portrait", "landscape"]
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices

QUOTA_KINDS = [
    app_commands.Choice(name="images generated", value="generate"),
    app_commands.Choice(name="trainings", value="train"),
]
QUOTA_PLACES = [
    app_commands.Choice(name="this server", value="server"),
    app_commands.Choice(name="everywhere (the bot's operator only)", value="everywhere"),
]


class StyleCommandTree(app_commands.CommandTree[discord.Client]):
    """The command tree; errors inside any command go to the adapter's error report."""

    def __init__(self, client: discord.Client, adapter: DiscordAdapter) -> None:
        super().__init__(client)
        self.adapter = adapter
        install_commands(self, adapter)

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        await self.adapter.report_error(interaction, cause)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        # Runs in the command's own task: the adapter tracks it so stop() waits for it.
        return await self.adapter.admit(interaction)


def manages_server(interaction: discord.Interaction[Any]) -> bool:
    """Whether the member may manage the server the command came from (never in a DM)."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


def install_commands(tree: app_commands.CommandTree[Any], adapter: DiscordAdapter) -> None:
    """Define every slash command and the context menu on `tree`."""

    async def style_names(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        # Autocomplete cannot be deferred; the core answers from SQLite quickly.
        reply = await adapter.bot.handle(
            UsableStyles(adapter.requester(interaction), current, AUTOCOMPLETE_LIMIT)
        )
        if not isinstance(reply, StyleChoices):
            return []
        return [app_commands.Choice(name=n, value=n) for n in reply.names[:AUTOCOMPLETE_LIMIT]]

    @tree.command(name="train", description="Train a new style from images you made or may use")
    @app_commands.describe(
        name="A name for the style: lowercase letters, digits, - or _ (e.g. watercolor)",
        image1="A reference image (PNG, JPEG or WebP) you made or hold the rights to",
        image2="Another reference image (optional)",
        image3="Another reference image (optional)",
        image4="Another reference image (optional)",
        image5="Another reference image (optional)",
        image6="Another reference image (optional)",
        image7="Another reference image (optional)",
        image8="Another reference image (optional)",
        image9="Another reference image (optional)",
        image10="Another reference image (optional)",
    )
    async def train(
        interaction: discord.Interaction[Any],
        name: str,
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        image6: discord.Attachment | None = None,
        image7: discord.Attachment | None = None,
        image8: discord.Attachment | None = None,
        image9: discord.Attachment | None = None,
        image10: discord.Attachment | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        given = (image1, image2, image3, image4, image5, image6, image7, image8, image9, image10)
        files = await adapter.download([a for a in given if a is not None])
        if isinstance(files, ErrorReply):
            await adapter.respond(interaction, files, ephemeral=True)
            return
        upload = UploadImages(adapter.requester(interaction), files)
        await adapter.run(interaction, upload, ephemeral=True, style_name=name)

    @tree.context_menu(name="Add images to a style")
    async def add_images(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        # Reading a message the user picked needs no message-content intent.
        await adapter.defer(interaction, ephemeral=True)
        files = await adapter.download(message.attachments)
        if isinstance(files, ErrorReply):
            await adapter.respond(interaction, files, ephemeral=True)
            return
        upload = UploadImages(
            adapter.requester(interaction), files, posted_by=str(message.author.id)
        )
        await adapter.run(interaction, upload, ephemeral=True)

    @tree.command(name="imagine", description="Generate images, optionally in a style")
    @app_commands.describe(
        prompt="What to draw, e.g. a lighthouse at dawn",
        style="A style you may use here (yours, or one shared with this server)",
        negative="What to keep out of the image",
        seed="A number to make the result repeatable (random when left out)",
        aspect="The shape of the image",
        count="How many images to make",
    )
    @app_commands.autocomplete(style=style_names)
    async def imagine(
        interaction: discord.Interaction[Any],
        prompt: str,
        style: str | None = None,
        negative: str | None = None,
        seed: int | None = None,
        aspect: Aspect | None = None,
        count: int = 1,
    ) -> None:
        await adapter.defer(interaction, ephemeral=False)
        command = Imagine(
            adapter.requester(interaction),
            prompt,
            style=style or None,
            negative_prompt=negative or "",
            seed=seed,
            count=count,
            aspect=aspect,
        )
        await adapter.run(interaction, command, ephemeral=False)

    @tree.command(name="styles", description="List the styles you can use here")
    async def styles(interaction: discord.Interaction[Any]) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(interaction, ListStyles(adapter.requester(interaction)), ephemeral=True)

    @tree.command(name="status", description="Your queued and running jobs, with queue positions")
    async def status(interaction: discord.Interaction[Any]) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(interaction, ShowStatus(adapter.requester(interaction)), ephemeral=True)

    @tree.command(name="cancel", description="Cancel your newest queued or running job")
    @app_commands.describe(job="A job id from /status (default: your newest job)")
    async def cancel(interaction: discord.Interaction[Any], job: str | None = None) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = CancelJob(adapter.requester(interaction), job.strip() if job else None)
        await adapter.run(interaction, command, ephemeral=True)

    @tree.command(name="verify", description="Check whether an image was made here, and how")
    @app_commands.describe(image="The image to check for a stylebot watermark")
    async def verify(interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
        await adapter.defer(interaction, ephemeral=True)
        files = await adapter.download([image])
        if isinstance(files, ErrorReply):
            await adapter.respond(interaction, files, ephemeral=True)
            return
        await adapter.run(
            interaction, Verify(adapter.requester(interaction), files[0]), ephemeral=True
        )

    style_group = app_commands.Group(name="style", description="Look after your styles")

    @style_group.command(name="info", description="What a style is, who made it, how it trained")
    @app_commands.describe(name="The style")
    @app_commands.autocomplete(name=style_names)
    async def style_info(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(
            interaction, StyleInfo(adapter.requester(interaction), name), ephemeral=True
        )

    @style_group.command(name="share", description="Let members of this server use your style")
    @app_commands.describe(
        name="One of your styles",
        everyone="Share with everyone on every server instead of only this one",
    )
    @app_commands.autocomplete(name=style_names)
    async def style_share(
        interaction: discord.Interaction[Any], name: str, everyone: bool = False
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = ShareStyle(adapter.requester(interaction), name, public=everyone)
        await adapter.run(interaction, command, ephemeral=True)

    @style_group.command(name="unshare", description="Make your style private again")
    @app_commands.describe(name="One of your styles")
    @app_commands.autocomplete(name=style_names)
    async def style_unshare(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(
            interaction, UnshareStyle(adapter.requester(interaction), name), ephemeral=True
        )

    @style_group.command(
        name="delete",
        description="Delete your style, its training images, weights and the images made with it",
    )
    @app_commands.describe(name="One of your styles")
    @app_commands.autocomplete(name=style_names)
    async def style_delete(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(
            interaction, DeleteStyle(adapter.requester(interaction), name), ephemeral=True
        )

    @style_group.command(name="export", description="Download your style's LoRA weights")
    @app_commands.describe(name="One of your styles")
    @app_commands.autocomplete(name=style_names)
    async def style_export(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(
            interaction, ExportStyle(adapter.requester(interaction), name), ephemeral=True
        )

    tree.add_command(style_group)

    @tree.command(name="optout", description="Register your artwork so nobody else can train on it")
    @app_commands.describe(
        image1="An image you made; copies of it uploaded by anyone else are refused",
        image2="Another of your images (optional)",
        image3="Another of your images (optional)",
        image4="Another of your images (optional)",
        image5="Another of your images (optional)",
        image6="Another of your images (optional)",
        image7="Another of your images (optional)",
        image8="Another of your images (optional)",
        image9="Another of your images (optional)",
        image10="Another of your images (optional)",
    )
    async def optout(
        interaction: discord.Interaction[Any],
        image1: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        image6: discord.Attachment | None = None,
        image7: discord.Attachment | None = None,
        image8: discord.Attachment | None = None,
        image9: discord.Attachment | None = None,
        image10: discord.Attachment | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        given = (image1, image2, image3, image4, image5, image6, image7, image8, image9, image10)
        files = await adapter.download([a for a in given if a is not None])
        if isinstance(files, ErrorReply):
            await adapter.respond(interaction, files, ephemeral=True)
            return
        await adapter.run(
            interaction, OptOut(adapter.requester(interaction), files), ephemeral=True
        )

    @tree.command(
        name="forget-me",
        description="Erase everything of yours here: styles, images, uploads and outputs",
    )
    async def forget_me(interaction: discord.Interaction[Any]) -> None:
        # The core first says what would go; the Erase button confirms (views.py).
        await adapter.defer(interaction, ephemeral=True)
        await adapter.run(interaction, EraseMyData(adapter.requester(interaction)), ephemeral=True)

    install_admin_commands(tree, adapter, style_names)


StyleAutocomplete = Callable[
    [discord.Interaction[Any], str], Coroutine[Any, Any, list[app_commands.Choice[str]]]
]


def install_admin_commands(
    tree: app_commands.CommandTree[Any], adapter: DiscordAdapter, style_names: StyleAutocomplete
) -> None:
    """The /admin group. Who may do what is the core's decision; answers are ephemeral."""
    admin_group = app_commands.Group(
        name="admin", description="For the bot's operator and this server's managers"
    )

    async def run_admin(interaction: discord.Interaction[Any], command: AdminCommand) -> None:
        await adapter.run(interaction, command, ephemeral=True)

    @admin_group.command(name="pause", description="Stop starting trainings (operator)")
    async def admin_pause(interaction: discord.Interaction[Any]) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await run_admin(interaction, PauseTraining(adapter.requester(interaction)))

    @admin_group.command(name="resume", description="Start trainings again (operator)")
    async def admin_resume(interaction: discord.Interaction[Any]) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await run_admin(interaction, ResumeTraining(adapter.requester(interaction)))

    @admin_group.command(name="quota", description="Limit what each member may do per day")
    @app_commands.describe(
        kind="What to limit",
        limit="How many per member per day, 1 or more; leave out to lift the quota",
        where="This server (managers), or every server and chat (the bot's operator)",
    )
    @app_commands.choices(kind=QUOTA_KINDS, where=QUOTA_PLACES)
    async def admin_quota(
        interaction: discord.Interaction[Any],
        kind: app_commands.Choice[str],
        limit: int | None = None,
        where: app_commands.Choice[str] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = SetQuota(
            adapter.requester(interaction),
            kind.value,
            limit,
            manages_server=manages_server(interaction),
            everywhere=where is not None and where.value == "everywhere",
        )
        await run_admin(interaction, command)

    @admin_group.command(
        name="remove-style", description="Stop sharing someone's style with this server"
    )
    @app_commands.describe(name="A style shared with this server")
    @app_commands.autocomplete(name=style_names)
    async def admin_remove_style(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = RemoveSharedStyle(
            adapter.requester(interaction), name, manages_server=manages_server(interaction)
        )
        await run_admin(interaction, command)

    @admin_group.command(name="ban", description="Ban someone from the whole bot (operator)")
    @app_commands.describe(user="Whom to ban; their jobs are cancelled", reason="Why (logged)")
    async def admin_ban(
        interaction: discord.Interaction[Any], user: discord.User, reason: str | None = None
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = BanUser(adapter.requester(interaction), str(user.id), (reason or "").strip())
        await run_admin(interaction, command)

    @admin_group.command(name="unban", description="Let a banned user use the bot again (operator)")
    @app_commands.describe(user="Whom to unban")
    async def admin_unban(interaction: discord.Interaction[Any], user: discord.User) -> None:
        await adapter.defer(interaction, ephemeral=True)
        await run_admin(interaction, UnbanUser(adapter.requester(interaction), str(user.id)))

    @admin_group.command(name="queue", description="Queued and running jobs, with positions")
    async def admin_queue(interaction: discord.Interaction[Any]) -> None:
        await adapter.defer(interaction, ephemeral=True)
        command = ShowQueue(
            adapter.requester(interaction), manages_server=manages_server(interaction)
        )
        await run_admin(interaction, command)

    install_optout_review(admin_group, adapter, manages_server)
    tree.add_command(admin_group)
