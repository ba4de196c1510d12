"""The Telegram front end (python-telegram-bot): the same bot in groups and private chats."""

from stylebot.bot.telegram.adapter import TelegramAdapter, TelegramNotRunning
from stylebot.bot.telegram.albums import AlbumCollector
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.consent import ConsentFlow
from stylebot.bot.telegram.conversation import Conversation, requester_for
from stylebot.bot.telegram.delivery import DeliveryFailed, FloodAwareSender, JobStatusBoard
from stylebot.bot.telegram.handlers import TelegramHandlers
from stylebot.bot.telegram.render import BOT_COMMANDS, HELP_TEXT

__all__ = [
    "BOT_COMMANDS",
    "HELP_TEXT",
    "AlbumCollector",
    "ChatOutput",
    "ConsentFlow",
    "Conversation",
    "DeliveryFailed",
    "FloodAwareSender",
    "JobStatusBoard",
    "TelegramAdapter",
    "TelegramHandlers",
    "TelegramNotRunning",
    "requester_for",
]
