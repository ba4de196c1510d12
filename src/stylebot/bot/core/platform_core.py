"""The core as one platform sees it: replies whose texts name commands its way.

Each adapter talks to the core through a :class:`PlatformCore` with its own spelling
(stylebot.bot.core.mentions), for its answers and its notifications alike, so no reply
reaches a user with a command spelled for another platform.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from stylebot.bot.core.admin_commands import AdminCommand
from stylebot.bot.core.commands import Command
from stylebot.bot.core.mentions import Spelling, spell
from stylebot.bot.core.replies import Notification, Reply
from stylebot.bot.core.service import StyleBot


def spell_reply(reply: Reply, spelling: Spelling) -> Reply:
    """The reply with the mentions in its texts spelled."""
    changes = {
        name: spell(value, spelling)
        for name in ("text", "public_text")
        if isinstance(value := getattr(reply, name, None), str) and "\u27e6" in value
    }
    if not changes:
        return reply
    # Every reply is a dataclass; mypy cannot match field names across the Reply union.
    spelled: Reply = dataclasses.replace(cast(Any, reply), **changes)
    return spelled


class PlatformCore:
    """The core as one platform sees it: the same commands, and replies whose texts name
    commands the way that platform spells them."""

    def __init__(self, bot: StyleBot, spelling: Spelling) -> None:
        self.bot = bot
        self.spelling = spelling

    async def handle(self, command: Command | AdminCommand) -> Reply:
        return spell_reply(await self.bot.handle(command), self.spelling)

    def spelled(self, notification: Notification) -> Notification:
        reply = spell_reply(notification.reply, self.spelling)
        return (
            notification
            if reply is notification.reply
            else dataclasses.replace(notification, reply=reply)
        )
