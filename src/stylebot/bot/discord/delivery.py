"""Delivering job progress and results on Discord, within what a message may carry.

Where a job's result goes, in order:

1. the interaction that queued it (its response is edited: progress, then the
   images), while its token is valid;
2. otherwise (token expired, Discord says 10015 / 10008, or this process
   restarted and never saw the interaction): a normal message in the channel
   the job came from, mentioning the user;
3. if that channel is gone or closed to the bot (10003 / 403): a DM to the user.

A result the core marks private (the end of a training: it names the owner's
style) never goes to the channel: after 1 it goes to the owner's DMs, and with their
DMs closed the channel gets only the core's neutral line (``public_text``), with a
mention, or nothing.

A training preview (a picture of a style in training) is never posted in the
channel: /train answers ephemerally and the style is its owner's until shared. It
goes as an ephemeral follow-up on the interaction showing the training while its
token is valid, otherwise as a DM to the owner; with DMs closed it is dropped.

Discord takes at most MAX_MESSAGE_FILES files and MAX_MESSAGE_FILE_BYTES of them in
one message (413 / 40005 over it). Results are PNGs that carry their provenance
(watermark, C2PA manifest, metadata), so they are never shrunk or converted: images
that do not fit in one message go in several, each with its own buttons, in the same
place (the interaction's follow-ups, the channel, the DM). One PNG larger than a
message may carry cannot be sent at all: that is :class:`Undeliverable`, and the front
end tells the member why (stylebot.bot.core.delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from stylebot.bot.core.delivery import PlatformUnreachable, Undeliverable
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import (
    ImagesReady,
    JobFinished,
    JobProgress,
    Notification,
    is_private,
)
from stylebot.bot.discord.message_parts import Part, parts, result_ids
from stylebot.bot.discord.parts_sent import (
    CHANNEL,
    DM,
    INTERACTION,
    DeliveryProgress,
    already_sent,
    progress_of,
)
from stylebot.bot.discord.render import (
    Rendered,
    escape,
    mention,
    render,
)

if TYPE_CHECKING:
    from stylebot.bot.discord.adapter import DiscordAdapter

log = logging.getLogger(__name__)

#: How long a result waits for its "queued" answer to be on screen first.
ANSWER_WAIT_S = 10.0
#: Discord's answer to an upload over its size limit.
PAYLOAD_TOO_LARGE = 413


SendPart = Callable[[Part], Awaitable[object]]


class ResultDelivery:
    """Shows a job's progress and results where the user will see it (module doc)."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter

    async def notify(self, notification: Notification) -> None:
        """Raises Undeliverable for what Discord cannot take, PlatformUnreachable when
        Discord could not be reached (the front end waits for it, uncounted), and other
        errors for a refusal worth trying again a few times."""
        try:
            await self._notify(notification)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PlatformUnreachable(f"Discord: {exc!r}") from exc
        except discord.HTTPException as exc:
            if not_reached(exc):
                raise PlatformUnreachable(f"Discord answered {exc.status}") from exc
            if exc.status != PAYLOAD_TOO_LARGE:
                raise
            # The limits above are Discord's defaults; a request over them anyway
            # (headers, a changed limit) fails the same way every time.
            raise Undeliverable("Discord refused the files as too large") from exc

    async def _notify(self, notification: Notification) -> None:
        reply = notification.reply
        if isinstance(reply, JobProgress):
            await self._show_progress(reply)
            return
        if isinstance(reply, ImagesReady) and reply.preview_of is not None:
            await self._show_preview(notification.to, reply.preview_of, parts(render(reply)))
            return
        job_id = reply.job_id if isinstance(reply, JobFinished | ImagesReady) else None
        rendered = render(reply)
        ids = result_ids(reply)
        # Checked before anything is sent: a result that cannot go is not half sent.
        whole = parts(rendered, ids)
        progress = progress_of(notification.sent)
        where, remaining = already_sent(await progress.sent.sent(), len(whole))
        if where is not None:
            await self._send_remaining(notification.to, job_id, whole, remaining, where, progress)
            return
        if job_id is not None and await self._edit_interaction(job_id, whole, bool(ids), progress):
            return
        if is_private(reply):
            # For the owner's eyes only: their DMs, else the core's neutral line at most.
            if await self._direct_message(notification.to, rendered, ids, progress=progress):
                return
            public_text = reply.public_text if isinstance(reply, JobFinished) else ""
            if public_text:
                await self._post_elsewhere(
                    notification.to, Rendered(escape(public_text)), {}, job_id, progress
                )
            else:
                log.info("private result of job %s not delivered: DMs closed", job_id)
            return
        await self._post_elsewhere(notification.to, rendered, ids, job_id, progress)

    async def _send_remaining(
        self,
        to: Requester,
        job_id: str | None,
        whole: list[Part],
        remaining: list[int],
        where: str,
        progress: DeliveryProgress,
    ) -> None:
        """What an earlier try left unsent, after what it sent: as follow-ups while the
        interaction can take them, else in the channel, or the DM it went to."""
        with_buttons = any(part.output_ids for part in whole)
        send: SendPart
        tracked = self.adapter.jobs.get(job_id) if job_id is not None else None
        if where == INTERACTION and tracked is not None and tracked.token_usable():
            send = _follow_up_sender(tracked.interaction, tracked.ephemeral, with_buttons)
        elif where == DM:
            client = await self.adapter.ready_client()
            user_id = int(to.user_id)
            user = client.get_user(user_id) or await client.fetch_user(user_id)
            send, where = _sender(user, with_buttons), DM
        else:
            client = await self.adapter.ready_client()
            channel = client.get_partial_messageable(
                int(to.chat_id), guild_id=int(to.server_id) if to.server_id else None
            )
            send, where = _sender(channel, with_buttons), CHANNEL
        numbered = [(i, whole[i]) for i in remaining]
        await _send_rest(send, numbered, what="the rest of a result", progress=progress.at(where))
        if job_id is not None:
            self.adapter.jobs.pop(job_id)

    async def _show_progress(self, reply: JobProgress) -> None:
        """Edit the job's response, at most every few seconds; skipped when not possible."""
        tracked = self.adapter.jobs.get(reply.job_id)
        if tracked is None or not tracked.answered.is_set() or not tracked.token_usable():
            return
        if not tracked.progress_due(self.adapter.progress_interval_s):
            return
        tracked.edited()
        try:
            await tracked.interaction.edit_original_response(content=render(reply).short)
        except discord.HTTPException as exc:
            # Progress is best effort; the result has its own fallbacks.
            log.info("progress of job %s not shown: %s", reply.job_id, exc)

    async def _show_preview(self, to: Requester, training_job_id: str, preview: list[Part]) -> None:
        """A training preview for the owner only (see module doc), without the result
        buttons: it is a glimpse of a style in training, not a result to reroll or vary."""
        tracked = self.adapter.jobs.get(training_job_id)
        if tracked is not None and tracked.token_usable():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracked.answered.wait(), ANSWER_WAIT_S)
            followup = tracked.interaction.followup
            try:
                for part in preview:
                    await followup.send(part.content, ephemeral=True, **part.send_kwargs(False))
                return
            except discord.HTTPException as exc:
                # 10015 Unknown Webhook (token dead): the owner's DMs are still private.
                log.info("preview of job %s not sent as a follow-up (%s)", training_job_id, exc)
        if not await self._send_to_dm(to, preview, with_buttons=False):
            log.info("preview of job %s not delivered: its owner takes no DMs", training_job_id)

    async def _edit_interaction(
        self, job_id: str, whole: list[Part], with_buttons: bool, progress: DeliveryProgress
    ) -> bool:
        """Put the result into the interaction's response (and its follow-ups, when it
        takes several messages); False when that is not possible. The interaction is
        forgotten once all went (a retry after a failed follow-up still needs it)."""
        tracked = self.adapter.jobs.get(job_id)
        if tracked is None:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracked.answered.wait(), ANSWER_WAIT_S)
        if not tracked.token_usable():
            log.info("token of job %s expired; posting the result in the channel", job_id)
            self.adapter.jobs.pop(job_id)
            return False
        first, *rest = whole
        interaction = tracked.interaction
        try:
            await interaction.edit_original_response(
                content=first.content,
                embed=first.embed,
                attachments=first.files(),
                view=first.view(with_buttons),
            )
        except discord.HTTPException as exc:
            if exc.status == PAYLOAD_TOO_LARGE:
                raise
            # 10015 Unknown Webhook (token dead), 10008 (response deleted), ...
            log.info(
                "result of job %s not edited into its interaction (%s); posting it", job_id, exc
            )
            self.adapter.jobs.pop(job_id)
            return False
        progress = progress.at(INTERACTION)
        await progress.mark(0, first.output_ids)
        follow_up = _follow_up_sender(interaction, tracked.ephemeral, with_buttons)
        numbered = list(enumerate(rest, start=1))
        await _send_rest(follow_up, numbered, what=f"job {job_id}'s result", progress=progress)
        self.adapter.jobs.pop(job_id)
        return True

    async def _post_elsewhere(
        self,
        to: Requester,
        rendered: Rendered,
        ids: Mapping[str, str],
        job_id: str | None,
        progress: DeliveryProgress | None = None,
    ) -> None:
        """A normal message in the job's channel mentioning the user; a DM if that fails."""
        client = await self.adapter.ready_client()
        user_id = int(to.user_id)
        channel = client.get_partial_messageable(
            int(to.chat_id), guild_id=int(to.server_id) if to.server_id else None
        )
        first, *rest = parts(rendered, ids, prefix=f"{mention(to.user_id)} ")
        try:
            await channel.send(
                first.content,
                allowed_mentions=discord.AllowedMentions(users=[discord.Object(user_id)]),
                **first.send_kwargs(bool(ids)),
            )
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("channel %s unusable (%s); sending the result as a DM", to.chat_id, exc)
        else:
            in_channel = progress.at(CHANNEL) if progress is not None else None
            if in_channel is not None:
                await in_channel.mark(0, first.output_ids)
            numbered = list(enumerate(rest, start=1))
            await _send_rest(
                _sender(channel, bool(ids)), numbered, what="a result", progress=in_channel
            )
            return
        prefix = "I could not post in the channel where you asked, so here it is. "
        if not await self._direct_message(to, rendered, ids, prefix=prefix, progress=progress):
            # Nothing else can reach them; the record stays and /status shows it.
            log.error(
                "result of job %s could not be delivered: channel %s unusable and DMs "
                "closed. The result is kept in the database.",
                job_id,
                to.chat_id,
            )

    async def _direct_message(
        self,
        to: Requester,
        rendered: Rendered,
        ids: Mapping[str, str],
        *,
        prefix: str = "",
        progress: DeliveryProgress | None = None,
    ) -> bool:
        """Send `rendered`, after `prefix`, to the user's DMs; False when Discord refuses
        (DMs closed, user unknown). Other errors propagate, so the event is kept."""
        whole = parts(rendered, ids, prefix=prefix)
        return await self._send_to_dm(to, whole, bool(ids), progress)

    async def _send_to_dm(
        self,
        to: Requester,
        whole: list[Part],
        with_buttons: bool,
        progress: DeliveryProgress | None = None,
    ) -> bool:
        client = await self.adapter.ready_client()
        user_id = int(to.user_id)
        first, *rest = whole
        try:
            user = client.get_user(user_id) or await client.fetch_user(user_id)
            await user.send(first.content, **first.send_kwargs(with_buttons))
        except (discord.NotFound, discord.Forbidden) as exc:
            log.info("DM refused by Discord: %s", exc)
            return False
        in_dm = progress.at(DM) if progress is not None else None
        if in_dm is not None:
            await in_dm.mark(0, first.output_ids)
        numbered = list(enumerate(rest, start=1))
        await _send_rest(_sender(user, with_buttons), numbered, what="a DM", progress=in_dm)
        return True


def _follow_up_sender(
    interaction: discord.Interaction[Any], ephemeral: bool, with_buttons: bool
) -> SendPart:
    async def follow_up(part: Part) -> object:
        kwargs = part.send_kwargs(with_buttons)
        if part.content:  # Webhook.send takes no None for content: left out instead
            kwargs["content"] = part.content
        return await interaction.followup.send(ephemeral=ephemeral, **kwargs)

    return follow_up


def _sender(to: discord.abc.Messageable, with_buttons: bool) -> SendPart:
    async def send(part: Part) -> object:
        return await to.send(part.content or None, **part.send_kwargs(with_buttons))

    return send


async def _send_rest(
    send: SendPart,
    rest: Sequence[tuple[int, Part]],
    *,
    what: str,
    progress: DeliveryProgress | None = None,
) -> None:
    """The messages after the first (numbered). The first is out already, so a text page
    refused now is logged rather than sent again somewhere else (it would double it); a
    refused file raises, so that the front end tries again (only what is not marked
    sent in ``progress``) or tells the member."""
    for index, part in rest:
        try:
            await send(part)
        except discord.HTTPException as exc:
            if part.attachments:
                raise
            log.warning("the rest of %s was not sent: %s", what, exc)
            return
        if progress is not None:
            await progress.mark(index, part.output_ids)


def not_reached(error: discord.HTTPException) -> bool:
    """Discord's servers failing (5xx) or a rate limit discord.py would not wait out:
    no refusal of what was sent."""
    return error.status >= 500 or error.status == 429
