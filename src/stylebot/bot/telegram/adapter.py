"""The Telegram front end: a python-telegram-bot ``Application`` over the bot core.

``stylebot run`` starts it next to Discord in one event loop (see ``bootstrap``): ``start``
returns once the bot polls for updates, ``notify`` shows job progress and results, and
``stop`` stops polling and closes the HTTP connections.
"""

from __future__ import annotations

import datetime as dtm
import logging
import os
from typing import Any, TypeAlias

from telegram import BotCommand, BotCommandScopeAllChatAdministrators, Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    JobQueue,
    MessageHandler,
    filters,
)

from stylebot.bot.core.replies import Notification
from stylebot.bot.core.service import StyleBot
from stylebot.bot.telegram.conversation import PLATFORM
from stylebot.bot.telegram.delivery import FloodAwareSender, JobStatusBoard
from stylebot.bot.telegram.handlers import TelegramHandlers
from stylebot.bot.telegram.render import ADMIN_BOT_COMMAND, BOT_COMMANDS
from stylebot.config import Settings

log = logging.getLogger(__name__)

# What `Application.builder()...build()` makes: python-telegram-bot's default bot,
# context, user/chat/bot data and job queue types.
DefaultApplication: TypeAlias = Application[
    ExtBot[None],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]


class TelegramNotRunning(RuntimeError):
    """A notification arrived while the bot is stopped; the front end keeps the event."""


class TelegramAdapter:
    """The ``ChatAdapter`` for Telegram.

    ``base_url``/``base_file_url`` point the client at another Bot API server (a local
    ``telegram-bot-api``, or the tests' fake); PTB appends the token to both. The timing
    knobs exist for tests; their defaults suit Telegram.
    """

    platform = PLATFORM

    def __init__(
        self,
        bot: StyleBot,
        settings: Settings,
        *,
        base_url: str | None = None,
        base_file_url: str | None = None,
        album_quiet_s: float = 1.0,
        private_edit_interval_s: float = 1.0,
        group_edit_interval_s: float = 3.0,
        poll_timeout_s: float = 10.0,
    ) -> None:
        if not settings.telegram_token:
            raise ValueError("TelegramAdapter needs TELEGRAM_TOKEN (from @BotFather)")
        self.core = bot
        self.settings = settings
        self.base_url = base_url
        self.base_file_url = base_file_url
        self.album_quiet_s = album_quiet_s
        self.private_edit_interval_s = private_edit_interval_s
        self.group_edit_interval_s = group_edit_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.sender = FloodAwareSender()
        self.application: DefaultApplication | None = None
        self.handlers: TelegramHandlers | None = None
        self.board: JobStatusBoard | None = None

    @property
    def running(self) -> bool:
        return self.application is not None and self.application.running

    async def start(self) -> None:
        # Opt in to PTB's timedelta time periods (the next major version's default), so
        # every 429 does not log a deprecation warning; delivery reads either form.
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        # httpx logs every request at INFO, and the Bot API puts the token in the URL:
        # keep it out of the logs unless the operator configured httpx logging on purpose.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.level == logging.NOTSET:
            httpx_log.setLevel(logging.WARNING)
        builder = Application.builder().token(self.settings.telegram_token or "")
        if self.base_url:
            builder = builder.base_url(self.base_url)
        if self.base_file_url:
            builder = builder.base_file_url(self.base_file_url)
        # Updates are handled concurrently: a download or a flood wait in one chat must
        # not hold up every other chat.
        application = builder.concurrent_updates(True).build()
        board = JobStatusBoard(
            application.bot,
            self.sender,
            private_interval_s=self.private_edit_interval_s,
            group_interval_s=self.group_edit_interval_s,
        )
        handlers = TelegramHandlers(
            self.core,
            application.bot,
            max_upload_bytes=self.settings.max_upload_bytes,
            bot_username=lambda: application.bot.username,
            sender=self.sender,
            board=board,
            album_quiet_s=self.album_quiet_s,
            # Album handling runs as an application task, so stop() waits for an album
            # that was already received instead of dropping it.
            spawn=lambda coroutine: application.create_task(coroutine),
        )
        new_messages = filters.UpdateType.MESSAGE  # edits of old messages are not commands
        application.add_handler(
            MessageHandler(new_messages & (filters.PHOTO | filters.Document.ALL), handlers.on_media)
        )
        application.add_handler(
            MessageHandler(new_messages & filters.TEXT & filters.COMMAND, handlers.on_command)
        )
        application.add_handler(MessageHandler(new_messages & filters.TEXT, handlers.on_text))
        application.add_handler(CallbackQueryHandler(handlers.on_button))
        application.add_error_handler(_log_error)

        try:
            await application.initialize()  # getMe: a wrong token fails here
        except InvalidToken:
            log.error(
                "Telegram rejected TELEGRAM_TOKEN: set it to the token @BotFather gave "
                "(/mybots → your bot → API Token)"
            )
            raise
        except NetworkError as error:
            log.error(
                "cannot reach the Telegram Bot API (%s): check the network and any "
                "HTTPS_PROXY/NO_PROXY settings",
                error,
            )
            raise
        try:
            commands = [BotCommand(name, description) for name, description in BOT_COMMANDS]
            await self.sender.call(
                "setup", lambda: application.bot.set_my_commands(commands), "set commands"
            )
            # Group admins' menus list /admin too (a scope's list replaces the default one).
            admin_commands = [*commands, BotCommand(*ADMIN_BOT_COMMAND)]
            await self.sender.call(
                "setup",
                lambda: application.bot.set_my_commands(
                    admin_commands, scope=BotCommandScopeAllChatAdministrators()
                ),
                "set admin commands",
            )
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(
                timeout=dtm.timedelta(seconds=self.poll_timeout_s),
                allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
                # Commands sent while the bot was down are still answered.
                drop_pending_updates=False,
            )
        except BaseException:
            # Close the HTTP connections of a half-started bot before reporting why.
            if application.running:
                await application.stop()
            await application.shutdown()
            raise
        self.application, self.handlers, self.board = application, handlers, board
        log.info("telegram bot @%s polling for updates", application.bot.username)

    async def stop(self) -> None:
        application = self.application
        if application is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if self.board is not None:
            await self.board.close()
        if application.running:
            await application.stop()  # waits for updates and albums being handled
        await application.shutdown()
        self.application = None

    async def notify(self, notification: Notification) -> None:
        if self.handlers is None or not self.running:
            raise TelegramNotRunning("the Telegram front end is not running")
        await self.handlers.deliver(notification)


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Errors the handlers did not expect (they catch their own): log them for the operator."""
    # Its id, not the update: that holds what the user wrote (a prompt, a style name).
    update_id = getattr(update, "update_id", type(update).__name__)
    log.error("telegram update %s failed", update_id, exc_info=context.error)
