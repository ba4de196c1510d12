"""Sending into chats within Telegram's flood limits, and one status message per job.

Telegram answers 429 with ``retry_after`` when a bot posts too fast (about one message a
second per chat, twenty a minute per group). A call made before that time has passed gets
another 429, so every call that posts into a chat goes through :class:`FloodAwareSender`,
which waits the time Telegram asked for (for the whole chat, not just the one call) and
tries again.

:class:`JobStatusBoard` keeps a job's progress in one message that it edits, at most once a
second in private chats and once every three seconds in groups, coalescing the steps in
between; the final state is always delivered, in a new message when the old one is gone
(after a restart nothing is remembered, so the first update sends a fresh message).

:class:`PrivatePreviews` sends training previews to the style's owner only: Telegram has
no message that one member of a group alone sees, so from a group they go to the owner's
private chat with the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from telegram import Bot, Message, ReplyParameters
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from stylebot.bot.core.delivery import PlatformUnreachable
from stylebot.bot.telegram.conversation import chat_in_logs
from stylebot.bot.telegram.render import MAX_CAPTION_CHARS, fit, preview_hint_text

log = logging.getLogger(__name__)

T = TypeVar("T")

ChatId = int | str


def retry_after_seconds(error: RetryAfter) -> float:
    """``retry_after`` in seconds, whichever form PTB gives it in (int, or timedelta with
    ``PTB_TIMEDELTA=true``); reading the int form warns about a deprecation we handle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, dtm.timedelta) else float(wait)


def is_not_modified(error: BadRequest) -> bool:
    """Telegram refuses an edit that changes nothing; for us that edit already happened."""
    return "not modified" in error.message.lower()


def is_too_large(error: TelegramError) -> bool:
    """Telegram's HTTP 413 for an upload over its limit. PTB raises it as a NetworkError
    ("Request Entity Too Large", or "... (413)" when the body is not JSON), but sending
    the same bytes again cannot succeed."""
    message = error.message.lower()
    return "request entity too large" in message or "(413)" in message


def not_reached(error: TelegramError) -> bool:
    """Telegram did not answer, or asked us to wait: no refusal of what was sent. PTB
    raises a 400 (BadRequest) and a 413 as NetworkErrors too: those are refusals."""
    if isinstance(error, RetryAfter):
        return True
    return (
        isinstance(error, NetworkError)
        and not isinstance(error, BadRequest)
        and not is_too_large(error)
    )


class DeliveryFailed(PlatformUnreachable):
    """Telegram kept timing out or rate-limiting after our retries: not a refusal of what
    was sent; the caller decides whether that loses anything."""


class FloodAwareSender:
    """Runs Bot API calls for a chat, honouring 429 ``retry_after`` for the whole chat.

    Network errors are retried a few times with a growing pause (a send that timed out may
    have arrived, so a rare duplicate is the price of never dropping a result);
    ``BadRequest`` and other answers that will not change by retrying, such as
    ``Forbidden`` or a 413 for a file over Telegram's size limit, go straight back to the
    caller.
    """

    def __init__(
        self,
        *,
        max_flood_waits: int = 8,
        max_network_retries: int = 3,
        network_backoff_s: float = 1.0,
    ) -> None:
        self.max_flood_waits = max_flood_waits
        self.max_network_retries = max_network_retries
        self.network_backoff_s = network_backoff_s
        # chat id -> loop time before which Telegram told us not to post there.
        self._blocked_until: dict[ChatId, float] = {}

    async def call(self, chat_id: ChatId, action: Callable[[], Awaitable[T]], what: str) -> T:
        """``action()``, repeated while Telegram says to wait or the network fails."""
        loop = asyncio.get_running_loop()
        flood_waits = network_errors = 0
        while True:
            blocked = self._blocked_until.get(chat_id, 0.0) - loop.time()
            if blocked > 0:
                await asyncio.sleep(blocked)
            else:
                self._blocked_until.pop(chat_id, None)
            try:
                return await action()
            except RetryAfter as error:
                flood_waits += 1
                wait = retry_after_seconds(error)
                if flood_waits > self.max_flood_waits:
                    raise DeliveryFailed(
                        f"{what} in {chat_in_logs(chat_id)}: still flood-limited after "
                        f"{self.max_flood_waits} waits"
                    ) from error
                log.info(
                    "%s in %s: flood control, waiting %.1f s", what, chat_in_logs(chat_id), wait
                )
                # A small margin: retrying a moment too early earns another 429.
                until = loop.time() + wait + 0.05
                self._blocked_until[chat_id] = max(self._blocked_until.get(chat_id, 0.0), until)
            except BadRequest:
                raise
            except (TimedOut, NetworkError) as error:
                if is_too_large(error):
                    raise
                network_errors += 1
                if network_errors > self.max_network_retries:
                    raise DeliveryFailed(f"{what} in {chat_in_logs(chat_id)}: {error}") from error
                pause = self.network_backoff_s * 2 ** (network_errors - 1)
                log.warning(
                    "%s in %s failed (%s); retrying in %.1f s",
                    what,
                    chat_in_logs(chat_id),
                    error,
                    pause,
                )
                await asyncio.sleep(pause)


@dataclass
class _StatusMessage:
    """A job's status message: what it shows, and what it should show next."""

    job_id: str
    chat_id: ChatId
    min_interval_s: float
    message_id: int | None = None
    shown: str = ""
    wanted: str = ""  # already cut to Telegram's limit, so it can equal `shown`
    last_change: float = float("-inf")
    # Held while sending or editing, so the final edit never races a progress edit.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    editor: asyncio.Task[None] | None = None


class JobStatusBoard:
    """One message per job that shows its progress; edited, throttled, final state kept."""

    def __init__(
        self,
        bot: Bot,
        sender: FloodAwareSender,
        *,
        private_interval_s: float = 1.0,
        group_interval_s: float = 3.0,
        remember_finished: int = 1000,
    ) -> None:
        self.bot = bot
        self.sender = sender
        self.private_interval_s = private_interval_s
        self.group_interval_s = group_interval_s
        self._jobs: dict[str, _StatusMessage] = {}
        # Ended jobs, so a late progress event does not open a new message.
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._remember_finished = remember_finished

    def _interval(self, in_group: bool) -> float:
        return self.group_interval_s if in_group else self.private_interval_s

    def _status(self, job_id: str, chat_id: ChatId, in_group: bool) -> _StatusMessage:
        status = self._jobs.get(job_id)
        if status is None:
            status = _StatusMessage(job_id, chat_id, self._interval(in_group))
            self._jobs[job_id] = status
        return status

    async def open(
        self,
        job_id: str,
        chat_id: ChatId,
        text: str,
        *,
        in_group: bool,
        reply_to: int | None = None,
    ) -> None:
        """Post the status message of a job that was just queued."""
        status = self._status(job_id, chat_id, in_group)
        async with status.lock:
            if status.message_id is not None:  # a progress update got there first
                return
            status.wanted = status.wanted or fit(text)
            await self._post(status, reply_to=reply_to)

    def progress(self, job_id: str, chat_id: ChatId, text: str, *, in_group: bool) -> None:
        """Show ``text`` soon. Returns at once; an editor task applies the newest text."""
        if job_id in self._finished:
            return
        status = self._status(job_id, chat_id, in_group)
        status.wanted = fit(text)
        if status.editor is None or status.editor.done():
            status.editor = asyncio.create_task(
                self._edit_until_current(status), name=f"telegram-status-{job_id}"
            )

    async def finish(
        self, job_id: str, chat_id: ChatId, text: str, *, in_group: bool
    ) -> int | None:
        """Show the job's final state and return its message id; raises DeliveryFailed
        (or Telegram's refusal) only when it could not be shown."""
        status = self._status(job_id, chat_id, in_group)
        self._finished[job_id] = None  # first, so no progress starts a new editor meanwhile
        while len(self._finished) > self._remember_finished:
            self._finished.popitem(last=False)
        if status.editor is not None:
            status.editor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status.editor
        async with status.lock:
            status.wanted = fit(text)
            try:
                await self._post(status)
            finally:
                self._jobs.pop(job_id, None)
            return status.message_id

    async def close(self) -> None:
        """Stop pending progress edits (at shutdown): progress is not worth waiting for."""
        editors = [s.editor for s in self._jobs.values() if s.editor and not s.editor.done()]
        for editor in editors:
            editor.cancel()
        for editor in editors:
            with contextlib.suppress(asyncio.CancelledError):
                await editor

    async def _edit_until_current(self, status: _StatusMessage) -> None:
        loop = asyncio.get_running_loop()
        while status.wanted != status.shown:
            # Keep to the chat's pace; steps arriving meanwhile only replace `wanted`.
            wait = status.last_change + status.min_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            async with status.lock:
                try:
                    await self._post(status)
                except (TelegramError, DeliveryFailed) as error:
                    # Progress is best effort: the final state is delivered by finish().
                    # Named by job: a private chat's id is its member's Telegram id.
                    log.warning("progress of job %s not shown: %s", status.job_id, error)
                    return

    async def _post(self, status: _StatusMessage, reply_to: int | None = None) -> None:
        """Edit the status message to ``wanted``, or send it when there is none (any more)."""
        text = status.wanted
        if text == status.shown:
            return
        if status.message_id is not None:
            message_id = status.message_id
            try:
                await self.sender.call(
                    status.chat_id,
                    lambda: self.bot.edit_message_text(
                        text, chat_id=status.chat_id, message_id=message_id
                    ),
                    "edit status",
                )
            except BadRequest as error:
                if not is_not_modified(error):
                    # Deleted by a user, or too old to edit: say it in a new message.
                    log.info("status message %s not editable (%s)", message_id, error)
                    status.message_id = None
            if status.message_id is not None:
                status.shown = text
                status.last_change = asyncio.get_running_loop().time()
                return
        reply = (
            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )
        sent: Message = await self.sender.call(
            status.chat_id,
            lambda: self.bot.send_message(status.chat_id, text, reply_parameters=reply),
            "send status",
        )
        status.message_id = sent.message_id
        status.shown = text
        status.last_change = asyncio.get_running_loop().time()


def cannot_write_to(error: TelegramError) -> bool:
    """Telegram's answer when a bot writes to a user who never started it (403 "bot can't
    initiate conversation") or blocked it (403), or whom it does not know (400)."""
    return isinstance(error, Forbidden) or (
        isinstance(error, BadRequest) and "chat not found" in error.message.lower()
    )


class PrivatePreviews:
    """Training previews, for the style's owner only.

    A style in training is its owner's until they share it, and a preview shows what it
    looks like. In a private chat the preview goes there; from a group it goes to the
    owner's private chat with the bot, as a group cannot hold a message for one member.
    When the bot cannot write there (the owner never pressed Start, or blocked it), the
    group is told once per training how to get them, and the picture is not sent.
    """

    def __init__(self, bot: Bot, sender: FloodAwareSender, *, remember_hinted: int = 1000) -> None:
        self.bot = bot
        self.sender = sender
        # Training jobs whose group was told where previews go, so it is told once.
        self._hinted: OrderedDict[str, None] = OrderedDict()
        self._remember_hinted = remember_hinted

    async def send(
        self,
        *,
        chat_id: ChatId,
        user_id: int,
        display_name: str,
        in_group: bool,
        training_job_id: str,
        text: str,
        image: bytes,
    ) -> None:
        """Send the preview `image` with `text`; raises what Telegram answers, except that
        the owner's private chat is closed to the bot (then the group gets the hint)."""
        private_chat: ChatId = user_id if in_group else chat_id
        try:
            await self.sender.call(
                private_chat,
                lambda: self.bot.send_photo(
                    private_chat, image, caption=fit(text, MAX_CAPTION_CHARS)
                ),
                "send preview",
            )
            return
        except TelegramError as error:
            if not (in_group and cannot_write_to(error)):
                raise
            log.info("preview of job %s not sent privately: %s", training_job_id, error)
        if training_job_id in self._hinted:
            return
        self._hinted[training_job_id] = None
        while len(self._hinted) > self._remember_hinted:
            self._hinted.popitem(last=False)
        hint = preview_hint_text(display_name, self.bot.username)
        await self.sender.call(
            chat_id, lambda: self.bot.send_message(chat_id, fit(hint)), "send preview hint"
        )
