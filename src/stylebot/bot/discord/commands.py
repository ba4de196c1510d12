"""The slash commands and the message context menu: Discord input -> core commands.

Each command acknowledges the interaction first (Discord allows 3 seconds),
then builds the core command and lets the adapter show the reply. Answers
that only concern the user are ephemeral; /imagine answers in the channel,
since that is where the community wants to see the images.

/admin is visible to everyone (no default_permissions): the bot's operator
may not manage the server they use it in, and the core refuses everyone
without authority with a clear reply. Discord's Manage Server permission is
what the adapter passes on as `manages_server`.

Over 400 lines on purpose: the slash commands and the context menu, each a few lines
from Discord's options to a core command, read in one place (the picture commands are
in restyle_commands.py, /admin's opt-out ones in optout_admin.py).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from stylebot.bot.core.admin_commands import (
    AdminCommand,
    BanUser,
    PauseTraining,
    RemoveSharedStyle,
    ResumeTraining,
    SetQuota,
    ShowQueue,
    UnbanUser,
)
from stylebot.bot.core.commands import (
    CancelJob,
    DeleteStyle,
    EraseMyData,
    ExportStyle,
    Imagine,
    ListStyles,
    OptOut,
    ShareStyle,
    ShowCaptions,
    ShowStatus,
    StyleInfo,
    UnshareStyle,
    UploadImages,
    UsableStyles,
    Verify,
)
from stylebot.bot.core.replies import StyleChoices
from stylebot.bot.discord.caption_views import captioned
from stylebot.bot.discord.optout_admin import install_optout_review
from stylebot.bot.discord.restyle_commands import install_restyle_commands
from stylebot.queue.payloads import LORA_VARIANTS

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

log = logging.getLogger(__name__)

# The core's ASPECTS, as a type discord.py turns into the option's choices.
Aspect = Literal["square", "portrait", "landscape"]
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
MAX_IMAGES = 10  # attachment options on the commands that take images

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


ImagesCallback = Callable[..., Coroutine[Any, Any, None]]


def with_images(first: str, more: str) -> Callable[[ImagesCallback], ImagesCallback]:
    """A command taking up to MAX_IMAGES images: Discord has no option for a list of files,
    so the command gets options image1 (required) to image10, and ``callback`` gets them
    as one list ``images`` (its second parameter), with its other options by name."""

    def decorate(callback: ImagesCallback) -> ImagesCallback:
        signature = inspect.signature(callback)
        interaction, _images, *named = signature.parameters.values()
        slots = [
            inspect.Parameter(
                f"image{n}",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=discord.Attachment if n == 1 else discord.Attachment | None,
                default=inspect.Parameter.empty if n == 1 else None,
            )
            for n in range(1, MAX_IMAGES + 1)
        ]

        async def command(interaction: discord.Interaction[Any], **options: Any) -> None:
            given = [options.pop(f"image{n}", None) for n in range(1, MAX_IMAGES + 1)]
            await callback(interaction, [a for a in given if a is not None], **options)

        command.__name__, command.__qualname__ = callback.__name__, callback.__qualname__
        # Discord (and Python) take required options before optional ones.
        required = [p for p in named if p.default is inspect.Parameter.empty]
        optional = [p for p in named if p.default is not inspect.Parameter.empty]
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]  # inspect reads it
            parameters=[interaction, *required, slots[0], *optional, *slots[1:]]
        )
        descriptions = {f"image{n}": first if n == 1 else more for n in range(1, MAX_IMAGES + 1)}
        return app_commands.describe(**descriptions)(command)

    return decorate


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
        caption="What the images show, e.g. a harbour at dusk, fog (change it with /captions)",
        variant="The kind of adapter to train (default: the bot's; FLUX.1 and SD 3.5 train lora)",
    )
    @app_commands.choices(
        variant=[app_commands.Choice(name=kind, value=kind) for kind in LORA_VARIANTS]
    )
    @with_images(
        "A reference image (PNG, JPEG or WebP) you made or hold the rights to",
        "Another reference image (optional)",
    )
    async def train(
        interaction: discord.Interaction[Any],
        images: list[discord.Attachment],
        name: str,
        caption: str | None = None,
        variant: app_commands.Choice[str] | None = None,
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        requester = adapter.requester(interaction)
        await adapter.run_on_files(
            interaction,
            images,
            lambda files: UploadImages(requester, captioned(files, caption)),
            ephemeral=True,
            style_name=name,
            variant=variant.value if variant is not None else None,
        )

    @tree.context_menu(name="Add images to a style")
    async def add_images(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        # Reading a message the user picked needs no message-content intent.
        await adapter.defer(interaction, ephemeral=True)
        requester, posted_by = adapter.requester(interaction), str(message.author.id)
        # The message's text says what its images show.
        await adapter.run_on_files(
            interaction,
            message.attachments,
            lambda files: UploadImages(
                requester, captioned(files, message.content), posted_by=posted_by
            ),
            ephemeral=True,
        )

    @tree.command(name="captions", description="See and edit the captions of your images")
    @app_commands.describe(
        style="One of your styles, to see what it trained on (default: the waiting images)"
    )
    @app_commands.autocomplete(style=style_names)
    async def captions(interaction: discord.Interaction[Any], style: str | None = None) -> None:
        command = ShowCaptions(adapter.requester(interaction), style or None)
        await adapter.answer(interaction, command, ephemeral=True)

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
        command = Imagine(
            adapter.requester(interaction),
            prompt,
            style=style or None,
            negative_prompt=negative or "",
            seed=seed,
            count=count,
            aspect=aspect,
        )
        await adapter.answer(interaction, command, ephemeral=False)

    @tree.command(name="styles", description="List the styles you can use here")
    async def styles(interaction: discord.Interaction[Any]) -> None:
        await adapter.answer(
            interaction, ListStyles(adapter.requester(interaction)), ephemeral=True
        )

    @tree.command(name="status", description="Your queued and running jobs, with queue positions")
    async def status(interaction: discord.Interaction[Any]) -> None:
        await adapter.answer(
            interaction, ShowStatus(adapter.requester(interaction)), ephemeral=True
        )

    @tree.command(name="cancel", description="Cancel your newest queued or running job")
    @app_commands.describe(job="A job id from /status (default: your newest job)")
    async def cancel(interaction: discord.Interaction[Any], job: str | None = None) -> None:
        command = CancelJob(adapter.requester(interaction), job.strip() if job else None)
        await adapter.answer(interaction, command, ephemeral=True)

    @tree.command(name="verify", description="Check whether an image was made here, and how")
    @app_commands.describe(image="The image to check for a stylebot watermark")
    async def verify(interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
        await adapter.defer(interaction, ephemeral=True)
        requester = adapter.requester(interaction)
        await adapter.run_on_files(
            interaction, [image], lambda files: Verify(requester, files[0]), ephemeral=True
        )

    style_group = app_commands.Group(name="style", description="Look after your styles")

    @style_group.command(name="share", description="Let members of this server use your style")
    @app_commands.describe(
        name="One of your styles",
        everyone="Share with everyone on every server instead of only this one",
    )
    @app_commands.autocomplete(name=style_names)
    async def style_share(
        interaction: discord.Interaction[Any], name: str, everyone: bool = False
    ) -> None:
        command = ShareStyle(adapter.requester(interaction), name, public=everyone)
        await adapter.answer(interaction, command, ephemeral=True)

    for verb, kind, description in STYLE_COMMANDS:
        add_style_command(style_group, adapter, style_names, verb, kind, description)

    tree.add_command(style_group)

    @tree.command(name="optout", description="Register your artwork so nobody else can train on it")
    @with_images(
        "An image you made; copies of it uploaded by anyone else are refused",
        "Another of your images (optional)",
    )
    async def optout(
        interaction: discord.Interaction[Any], images: list[discord.Attachment]
    ) -> None:
        await adapter.defer(interaction, ephemeral=True)
        requester = adapter.requester(interaction)
        await adapter.run_on_files(
            interaction, images, lambda files: OptOut(requester, files), ephemeral=True
        )

    @tree.command(
        name="forget-me",
        description="Erase everything of yours here: styles, images, uploads and outputs",
    )
    async def forget_me(interaction: discord.Interaction[Any]) -> None:
        # The core first says what would go; the Erase button confirms (views.py).
        await adapter.answer(
            interaction, EraseMyData(adapter.requester(interaction)), ephemeral=True
        )

    install_restyle_commands(tree, adapter, style_names)
    install_admin_commands(tree, adapter, style_names)


StyleAutocomplete = Callable[
    [discord.Interaction[Any], str], Coroutine[Any, Any, list[app_commands.Choice[str]]]
]

#: The /style subcommands that take just a style's name (share takes more).
NamedStyleCommand = type[StyleInfo | UnshareStyle | DeleteStyle | ExportStyle]
STYLE_COMMANDS: tuple[tuple[str, NamedStyleCommand, str], ...] = (
    ("info", StyleInfo, "What a style is, who made it, how it trained"),
    ("unshare", UnshareStyle, "Make your style private again"),
    (
        "delete",
        DeleteStyle,
        "Delete your style, its training images, weights and the images made with it",
    ),
    ("export", ExportStyle, "Download your style's LoRA weights"),
)


def add_style_command(
    group: app_commands.Group,
    adapter: DiscordAdapter,
    style_names: StyleAutocomplete,
    verb: str,
    kind: NamedStyleCommand,
    description: str,
) -> None:
    """``/style VERB name``: the core's command of ``kind`` on that style."""

    @group.command(name=verb, description=description)
    @app_commands.describe(name="The style" if kind is StyleInfo else "One of your styles")
    @app_commands.autocomplete(name=style_names)
    async def style_command(interaction: discord.Interaction[Any], name: str) -> None:
        await adapter.answer(
            interaction, kind(adapter.requester(interaction), name), ephemeral=True
        )


def install_admin_commands(
    tree: app_commands.CommandTree[Any], adapter: DiscordAdapter, style_names: StyleAutocomplete
) -> None:
    """The /admin group. Who may do what is the core's decision; answers are ephemeral."""
    admin_group = app_commands.Group(
        name="admin", description="For the bot's operator and this server's managers"
    )

    async def run_admin(interaction: discord.Interaction[Any], command: AdminCommand) -> None:
        await adapter.answer(interaction, command, ephemeral=True)

    @admin_group.command(name="pause", description="Stop starting trainings (operator)")
    async def admin_pause(interaction: discord.Interaction[Any]) -> None:
        await run_admin(interaction, PauseTraining(adapter.requester(interaction)))

    @admin_group.command(name="resume", description="Start trainings again (operator)")
    async def admin_resume(interaction: discord.Interaction[Any]) -> None:
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
        command = RemoveSharedStyle(
            adapter.requester(interaction), name, manages_server=manages_server(interaction)
        )
        await run_admin(interaction, command)

    @admin_group.command(name="ban", description="Ban someone from the whole bot (operator)")
    @app_commands.describe(user="Whom to ban; their jobs are cancelled", reason="Why (logged)")
    async def admin_ban(
        interaction: discord.Interaction[Any], user: discord.User, reason: str | None = None
    ) -> None:
        command = BanUser(adapter.requester(interaction), str(user.id), (reason or "").strip())
        await run_admin(interaction, command)

    @admin_group.command(name="unban", description="Let a banned user use the bot again (operator)")
    @app_commands.describe(user="Whom to unban")
    async def admin_unban(interaction: discord.Interaction[Any], user: discord.User) -> None:
        await run_admin(interaction, UnbanUser(adapter.requester(interaction), str(user.id)))

    @admin_group.command(name="queue", description="Queued and running jobs, with positions")
    async def admin_queue(interaction: discord.Interaction[Any]) -> None:
        command = ShowQueue(
            adapter.requester(interaction), manages_server=manages_server(interaction)
        )
        await run_admin(interaction, command)

    install_optout_review(admin_group, adapter, manages_server)
    tree.add_command(admin_group)
