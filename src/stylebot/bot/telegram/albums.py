"""Collecting an album: Telegram delivers a media group as one update per item.

The items share a ``media_group_id`` and arrive within moments of each other, but nothing
says how many there are or which one is last. So the collector waits until no new item
has arrived for a short quiet period, then hands over the whole album at once, in the
order the user sent it. One album becomes one ``UploadImages`` and one consent question.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import Message

from stylebot.bot.telegram.conversation import chat_in_logs

log = logging.getLogger(__name__)

AlbumHandler = Callable[[list[Message]], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass
class _Album:
    chat_id: int
    user_id: int | None
    messages: list[Message] = field(default_factory=list)
    # Set by each new item; the flush waits for a quiet period without it being set.
    item_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class AlbumCollector:
    """Groups media-group messages and calls ``on_album`` once per album."""

    def __init__(
        self, on_album: AlbumHandler, *, quiet_s: float = 1.0, spawn: Spawn | None = None
    ) -> None:
        self.on_album = on_album
        self.quiet_s = quiet_s
        self._spawn: Spawn = spawn or asyncio.create_task
        self._albums: dict[str, _Album] = {}  # still collecting, by media_group_id
        self._handling: list[_Album] = []  # handed over, being handled

    def add(self, message: Message) -> None:
        """Take one item of an album (``message.media_group_id`` must be set)."""
        group_id = message.media_group_id
        if group_id is None:
            raise ValueError("message is not part of an album")
        album = self._albums.get(group_id)
        if album is None:
            user_id = message.from_user.id if message.from_user else None
            album = _Album(message.chat_id, user_id)
            self._albums[group_id] = album
        album.messages.append(message)
        album.item_arrived.set()
        if album.task is None:
            album.task = self._spawn(self._flush_when_quiet(group_id, album))

    async def settled(self, chat_id: int, user_id: int) -> None:
        """Wait until this user's albums in this chat have been handed over and handled,
        so a ``/train`` typed right after an album sees its images."""
        tasks = [
            album.task
            for album in [*self._albums.values(), *self._handling]
            if album.chat_id == chat_id and album.user_id == user_id and album.task is not None
        ]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)

    async def _flush_when_quiet(self, group_id: str, album: _Album) -> None:
        while True:
            album.item_arrived.clear()
            try:
                await asyncio.wait_for(album.item_arrived.wait(), self.quiet_s)
            except TimeoutError:
                break
        # An item arriving from now on starts a new album; this one is listed as being
        # handled, so settled() waits for the handling too.
        if self._albums.get(group_id) is album:
            del self._albums[group_id]
        self._handling.append(album)
        try:
            await self.on_album(sorted(album.messages, key=lambda m: m.message_id))
        except Exception:
            log.exception("album %s in %s not handled", group_id, chat_in_logs(album.chat_id))
        finally:
            self._handling.remove(album)
