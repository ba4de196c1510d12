"""The Discord front end: the client's lifecycle, answering interactions, delivering results.

It translates and renders; every rule (who may use what, limits, consent)
comes from the core's replies. What is Discord's business lives here:
acknowledging within 3 seconds, ephemeral answers, the 15-minute interaction
token, and where a result goes when its interaction is gone.

Where a job's progress and results go, and how they fit in Discord's messages, is
delivery.py's business (:class:`ResultDelivery`).

Stopping: discord.py runs each interaction's handler as a task of its own, so
`stop()` first turns new interactions away ("restarting, try again in a
moment") and waits, up to STOP_WAIT_S, for the handlers already running to
finish (their uploads stored, their jobs queued, their answers sent) before it
disconnects and the front end closes the database and Redis under them. Every
handler is admitted through `admit()`: the command tree's and the components'
`interaction_check`. What each button does is in views.py and consent_views.py.

Over 400 lines on purpose: starting, stopping and answering share one state (the client,
the handlers stop() waits for) and change together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import discord

from stylebot.bot.core.admin_commands import AdminCommand
from stylebot.bot.core.commands import (
    Command,
    IncomingFile,
)
from stylebot.bot.core.delivery import PlatformUnreachable
from stylebot.bot.core.model import Requester
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.replies import (
    CaptionList,
    ConsentRequest,
    ErasureConfirmation,
    ErrorReply,
    ImagesReady,
    JobQueued,
    Notification,
    Reply,
    is_private,
)
from stylebot.bot.core.service import StyleBot
from stylebot.bot.discord.caption_views import captions_view
from stylebot.bot.discord.commands import StyleCommandTree
from stylebot.bot.discord.consent_views import consent_view, licence_options
from stylebot.bot.discord.delivery import ResultDelivery
from stylebot.bot.discord.jobs import PROGRESS_EDIT_INTERVAL_S, JobInteractions
from stylebot.bot.discord.render import (
    ERROR_PREFIX,
    Rendered,
    discord_spelling,
    fit,
    megabytes,
    render,
)
from stylebot.bot.discord.views import (
    DYNAMIC_ITEMS,
    erasure_view,
    result_view,
)
from stylebot.config import Settings

log = logging.getLogger(__name__)

PLATFORM = "discord"
#: How long start() waits for the gateway's READY before giving up.
READY_TIMEOUT_S = 60.0
#: How long stop() waits for interactions being handled before it disconnects anyway.
STOP_WAIT_S = 20.0
RESTARTING = "The bot is restarting; please try again in a moment."
SOMETHING_WENT_WRONG = (
    "Something went wrong on my side, not yours. Nothing was changed; please try again "
    "in a moment. The operator has the details."
)

ErrorHook = Callable[[BaseException], None]


class DiscordSetupError(RuntimeError):
    """The operator must fix something (token, invite scopes); the message says what."""


def minimal_intents() -> discord.Intents:
    """Only the guilds intent: slash commands, buttons and context menus need nothing
    privileged, and the bot never reads message content."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class StyleBotClient(discord.Client):
    """A discord.py client that knows its adapter (components find it through here)."""

    def __init__(self, adapter: DiscordAdapter, *, guild_ready_timeout: float) -> None:
        super().__init__(
            intents=minimal_intents(),
            guild_ready_timeout=guild_ready_timeout,
            chunk_guilds_at_startup=False,
            max_messages=None,
            # Prompts and names are echoed into chat: never let them ping anyone.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.adapter = adapter
        self.tree = StyleCommandTree(self, adapter)

    async def setup_hook(self) -> None:
        # Registering the component classes is what makes old buttons work after a restart.
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.adapter.sync_commands(self.tree)


class DiscordAdapter:
    """The ChatAdapter for Discord (see stylebot.bootstrap.ChatAdapter)."""

    platform = PLATFORM

    def __init__(
        self,
        bot: StyleBot,
        settings: Settings,
        *,
        guild_ready_timeout: float = 2.0,
        progress_interval_s: float = PROGRESS_EDIT_INTERVAL_S,
        on_error: ErrorHook | None = None,
        stop_wait_s: float = STOP_WAIT_S,
    ) -> None:
        """`guild_ready_timeout` is how long discord.py waits for the guilds at connect
        (tests shorten it); `progress_interval_s` the least time between two progress
        edits of one job; `on_error` is told about every unexpected exception while
        handling an interaction (they are logged either way; tests fail on them);
        `stop_wait_s` how long stop() waits for interactions being handled."""
        self.bot = PlatformCore(bot, discord_spelling)
        self.settings = settings
        self.guild_ready_timeout = guild_ready_timeout
        self.progress_interval_s = progress_interval_s
        self.on_error = on_error
        self.client: StyleBotClient | None = None
        self.jobs = JobInteractions()
        self.delivery = ResultDelivery(self)
        self.stop_wait_s = stop_wait_s
        self._gateway: asyncio.Task[None] | None = None
        self._accepting = False
        self._handling: set[asyncio.Task[Any]] = set()

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Log in, sync the commands, connect the gateway; return once READY."""
        if self.client is not None:
            raise RuntimeError("the Discord adapter is already running")
        token = self.settings.discord_token
        if not token:
            raise DiscordSetupError("DISCORD_TOKEN is not set: copy it from the Developer Portal.")
        client = StyleBotClient(self, guild_ready_timeout=self.guild_ready_timeout)
        try:
            await client.login(token)
        except discord.LoginFailure as exc:
            await client.close()
            raise DiscordSetupError(
                "Discord rejected DISCORD_TOKEN. Copy the bot token again from the Developer "
                "Portal (your application -> Bot -> Reset Token)."
            ) from exc
        except BaseException:
            await client.close()
            raise
        self.client = client
        self._accepting = True
        self._gateway = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
        done, _ = await asyncio.wait(
            {self._gateway, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            log.info("Discord: connected as %s", client.user)
            return
        ready.cancel()
        failure = self._gateway.exception() if self._gateway.done() else None
        await self.stop()
        if failure is not None:
            raise DiscordSetupError(
                f"could not connect to Discord's gateway: {failure}"
            ) from failure
        raise DiscordSetupError(f"Discord's gateway sent no READY within {READY_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        """Turn new interactions away, let those being handled finish (up to
        `stop_wait_s`), then disconnect. Jobs keep running; their results go to the
        channel next time."""
        self._accepting = False
        await self._finish_handling()
        client, self.client = self.client, None
        gateway, self._gateway = self._gateway, None
        if client is not None:
            await client.close()
        if gateway is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await gateway

    async def _finish_handling(self) -> None:
        """Wait for the interaction handlers running now; cancel any that outlast the wait."""
        running = self._handling - {asyncio.current_task()}
        if not running:
            return
        log.info("Discord: finishing %d interaction(s) before disconnecting", len(running))
        _, late = await asyncio.wait(running, timeout=self.stop_wait_s)
        if not late:
            return
        log.warning(
            "Discord: %d interaction(s) still running after %.0f s; cancelling them",
            len(late),
            self.stop_wait_s,
        )
        # Cancelled now they roll back cleanly; left alone they would fail half-way
        # once the database and Redis are closed under them.
        for task in late:
            task.cancel()
        await asyncio.wait(late, timeout=5.0)

    async def admit(self, interaction: discord.Interaction[Any]) -> bool:
        """Whether to handle this interaction: yes while running (its handler task is
        tracked, so stop() waits for it); while stopping it is answered and refused."""
        if self._accepting:
            task = asyncio.current_task()
            if task is not None and task not in self._handling:
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)
            return True
        try:
            if interaction.type is discord.InteractionType.autocomplete:
                await interaction.response.autocomplete([])
            elif not interaction.response.is_done():
                await interaction.response.send_message(RESTARTING, ephemeral=True)
        except Exception as exc:  # the client may be closing already: best effort
            log.info("Discord: interaction %s not told about the restart: %s", interaction.id, exc)
        return False

    async def sync_commands(self, tree: StyleCommandTree) -> None:
        """Register the commands: to the test guild when configured (instant), else globally."""
        guild_id = self.settings.discord_guild_id
        where = f"guild {guild_id}" if guild_id else "all servers"
        try:
            if guild_id:
                guild = discord.Object(id=guild_id)
                tree.copy_global_to(guild=guild)
                synced = await tree.sync(guild=guild)
            else:
                synced = await tree.sync()
        except discord.Forbidden as exc:
            raise DiscordSetupError(
                f"Discord refused to register the slash commands for {where} ({exc.text}). "
                "Invite the bot with the scopes 'bot applications.commands', and check "
                "STYLEBOT_DISCORD_GUILD_ID names a server the bot is in."
            ) from exc
        log.info("Discord: %d commands synced to %s", len(synced), where)

    # -- answering interactions --------------------------------------------------

    def requester(self, interaction: discord.Interaction[Any]) -> Requester:
        """Who asked and where answers go, as the core knows it."""
        return Requester(
            PLATFORM,
            str(interaction.user.id),
            interaction.user.display_name,
            chat_id=str(interaction.channel_id),
            server_id=str(interaction.guild_id) if interaction.guild_id else None,
        )

    async def defer(self, interaction: discord.Interaction[Any], *, ephemeral: bool) -> None:
        """Acknowledge now (Discord's 3-second limit); the answer follows by editing."""
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)

    async def download(
        self, attachments: Sequence[discord.Attachment]
    ) -> tuple[IncomingFile, ...] | ErrorReply:
        """The attachments' bytes, never fetching one larger than the upload limit."""
        limit = self.settings.max_upload_bytes
        files: list[IncomingFile] = []
        for attachment in attachments:
            if attachment.size > limit:
                return ErrorReply(
                    f"{attachment.filename} is {megabytes(attachment.size)}, more than the "
                    f"{megabytes(limit)} an image may have. Nothing was saved; send a "
                    "smaller image."
                )
            try:
                data = await attachment.read()
            except discord.HTTPException as exc:
                log.warning("could not download attachment %s: %s", attachment.id, exc)
                return ErrorReply(
                    f"I could not download {attachment.filename} from Discord. Nothing was "
                    "saved; please send it again."
                )
            files.append(IncomingFile(attachment.filename, data))
        return tuple(files)

    async def answer(
        self,
        interaction: discord.Interaction[Any],
        command: Command | AdminCommand,
        *,
        ephemeral: bool,
    ) -> None:
        """Acknowledge, then run the command (building one takes no I/O: well in 3 s)."""
        await self.defer(interaction, ephemeral=ephemeral)
        await self.run(interaction, command, ephemeral=ephemeral)

    async def run_on_files(
        self,
        interaction: discord.Interaction[Any],
        attachments: Sequence[discord.Attachment],
        command: Callable[[tuple[IncomingFile, ...]], Command],
        *,
        ephemeral: bool,
        style_name: str = "",
        variant: str | None = None,
    ) -> None:
        """Download the attachments, then run the command made of them (or say why not)."""
        files = await self.download(attachments)
        if isinstance(files, ErrorReply):
            await self.respond(interaction, files, ephemeral=ephemeral)
            return
        await self.run(
            interaction, command(files), ephemeral=ephemeral, style_name=style_name, variant=variant
        )

    async def run(
        self,
        interaction: discord.Interaction[Any],
        command: Command | AdminCommand,
        *,
        ephemeral: bool,
        style_name: str = "",
        variant: str | None = None,
    ) -> None:
        """Hand a command to the core and show its reply as the interaction's answer."""
        reply = await self.bot.handle(command)
        await self.respond(
            interaction, reply, ephemeral=ephemeral, style_name=style_name, variant=variant
        )

    async def respond(
        self,
        interaction: discord.Interaction[Any],
        reply: Reply,
        *,
        ephemeral: bool,
        style_name: str = "",
        variant: str | None = None,
    ) -> None:
        """Replace the deferred "thinking…" response with the reply; a text longer than
        a message continues in follow-ups, as private as the response.

        A refusal, and what the core marks private, is for the user's eyes only: when
        the response was deferred in public, the public placeholder is removed and the
        reply sent ephemerally.
        """
        if (isinstance(reply, ErrorReply) or is_private(reply)) and not ephemeral:
            await interaction.delete_original_response()
            rendered = self._within_upload_limit(interaction, render(reply))
            first, *rest = rendered.pages()
            await interaction.followup.send(first, files=rendered.files(), ephemeral=True)
            await self._follow_up(interaction, rest, ephemeral=True)
            return
        rendered = self._within_upload_limit(interaction, render(reply))
        view: discord.ui.View | None = None
        if isinstance(reply, ConsentRequest):
            licences = licence_options((lic.id, lic.label) for lic in reply.licences)
            view = consent_view(interaction.user.id, style_name, licences, variant=variant)
        elif isinstance(reply, ImagesReady):
            view = result_view([image.output_id for image in reply.images])
        elif isinstance(reply, ErasureConfirmation):
            view = erasure_view(interaction.user.id)
        elif isinstance(reply, CaptionList):
            view = captions_view(interaction.user.id, reply)
        # Track before the first await: a fast job's result must find its interaction.
        tracked = (
            self.jobs.track(reply.job_id, interaction, ephemeral=ephemeral)
            if isinstance(reply, JobQueued)
            else None
        )
        first, *rest = rendered.pages()
        try:
            await interaction.edit_original_response(
                content=first,
                embed=rendered.embed,
                attachments=rendered.files(),
                view=view,
            )
        finally:
            if tracked is not None:
                tracked.edited()
                tracked.answered.set()
        await self._follow_up(interaction, rest, ephemeral=ephemeral)

    async def _follow_up(
        self, interaction: discord.Interaction[Any], pages: Sequence[str], *, ephemeral: bool
    ) -> None:
        """The rest of a long answer, a message per page, as private as its start."""
        for page in pages:
            await interaction.followup.send(page, ephemeral=ephemeral)

    def _within_upload_limit(
        self, interaction: discord.Interaction[Any], rendered: Rendered
    ) -> Rendered:
        """Discord refuses uploads over the server's limit; say so instead of failing."""
        size = sum(len(a.data) for a in rendered.attachments)
        limit = interaction.filesize_limit
        if size <= limit:
            return rendered
        return Rendered(
            fit(
                f"{ERROR_PREFIX}The file is {megabytes(size)}, more than Discord lets me "
                f"upload here ({megabytes(limit)}). Ask the bot's operator for it."
            )
        )

    @contextlib.asynccontextmanager
    async def guard(self, interaction: discord.Interaction[Any]) -> AsyncIterator[None]:
        """Report errors from component callbacks (discord.py would only log them)."""
        try:
            yield
        except Exception as error:
            await self.report_error(interaction, error)

    async def report_error(
        self, interaction: discord.Interaction[Any], error: BaseException
    ) -> None:
        """Log an unexpected error and tell the user something short and true."""
        log.error("Discord interaction %s failed", interaction.id, exc_info=error)
        if self.on_error is not None:
            self.on_error(error)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(SOMETHING_WENT_WRONG, ephemeral=True)
            else:
                await interaction.response.send_message(SOMETHING_WENT_WRONG, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not tell the user about the error in interaction %s", interaction.id)

    # -- notifications (job progress and results) ---------------------------------

    async def notify(self, notification: Notification) -> None:
        """Show a job's progress or result where the user will see it (delivery.py).

        Raises Undeliverable for what Discord cannot take, and other errors only when
        Discord could not be reached at all, so the front end tries again later.
        """
        if notification.to.platform != PLATFORM:
            log.warning("not a Discord notification: it is for %s", notification.to.platform)
            return
        try:
            await self.ready_client()
        except TimeoutError as exc:
            # The gateway is reconnecting (an outage): the result waits for it.
            raise PlatformUnreachable(
                f"Discord's gateway not ready within {READY_TIMEOUT_S:.0f} s"
            ) from exc
        await self.delivery.notify(self.bot.spelled(notification))

    async def ready_client(self) -> StyleBotClient:
        client = self.client
        if client is None:
            raise RuntimeError("the Discord adapter is not running")
        await asyncio.wait_for(client.wait_until_ready(), READY_TIMEOUT_S)
        return client
