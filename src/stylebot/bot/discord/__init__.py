"""The Discord front end (discord.py): slash commands, consent views, results with buttons.

Start it through :func:`stylebot.bootstrap.chat_adapters` (``stylebot run`` with
``DISCORD_TOKEN`` set); see ``docs/discord.md`` for setting up the application.
"""

from stylebot.bot.core.consent import PeopleAnswer
from stylebot.bot.discord.adapter import (
    DiscordAdapter,
    DiscordSetupError,
    StyleBotClient,
    minimal_intents,
)
from stylebot.bot.discord.views import DYNAMIC_ITEMS, OutputAction

__all__ = [
    "DYNAMIC_ITEMS",
    "DiscordAdapter",
    "DiscordSetupError",
    "OutputAction",
    "PeopleAnswer",
    "StyleBotClient",
    "minimal_intents",
]
