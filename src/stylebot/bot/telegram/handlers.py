"""Telegram updates in, bot-core commands out.

This is a translator: who may use a style, how many images a style takes, whether consent
is in place, all of that is the core's to decide. What lives here is Telegram's shape of
the conversation: commands are typed (``/imagine@thisbot ...`` in groups), albums arrive
as separate messages, images come as photos or as files, and buttons carry small
payloads back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from telegram import Bot, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from stylebot.bot.core.admin_grammar import HELP as ADMIN_HELP
from stylebot.bot.core.admin_grammar import needs_manager_check
from stylebot.bot.core.captions import WAITING_LISTING
from stylebot.bot.core.commands import (
    ConfirmConsent,
    DeleteStyle,
    DiscardUploads,
    EraseMyData,
    TrainStyle,
)
from stylebot.bot.core.consent import LICENCES, TERMS_TEXT, TERMS_VERSION
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.grammar import (
    ActAs,
    AskConsent,
    NeedsFiles,
    Quit,
    RestyleArgs,
    ShowHelp,
    TextCommand,
    caption_edits,
    parse,
    split_command,
)
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErasureConfirmation,
    ErrorReply,
    Notification,
    TextReply,
)
from stylebot.bot.core.service import StyleBot
from stylebot.bot.telegram.albums import AlbumCollector, Spawn
from stylebot.bot.telegram.buttons import Buttons
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.consent import ConsentFlow
from stylebot.bot.telegram.conversation import (
    Conversation,
    chat_in_logs,
    replied_user,
)
from stylebot.bot.telegram.delivery import FloodAwareSender, JobStatusBoard
from stylebot.bot.telegram.files import Downloads
from stylebot.bot.telegram.images import ImageFlows
from stylebot.bot.telegram.render import (
    ADMIN_BOT_COMMAND,
    BOT_COMMANDS,
    HELP_TEXT,
    SORRY,
    delete_style_keyboard,
    erase_keyboard,
    telegram_spelling,
)

log = logging.getLogger(__name__)

#: The typed commands (stylebot.bot.core.grammar) Telegram offers: those in its menus,
#: /start (what Telegram sends first) and /upload (which says how to send images).
TELEGRAM_COMMANDS = (
    *(name for name, _ in BOT_COMMANDS),
    ADMIN_BOT_COMMAND[0],
    "start",
    "upload",
)
# Commands whose caption on images means "these are reference images for a style".
UPLOAD_COMMANDS = ("train", "upload")
HOW_TO_UPLOAD = "Send the images as files (📎 → File) or photos, with /train NAME as the caption."
CONSENT_AGAIN = ConsentRequest(
    text="Confirm your rights to the images waiting for training.",
    terms=TERMS_TEXT,
    terms_version=TERMS_VERSION,
    licences=LICENCES,
    image_count=0,
)
# Someone posting as the group (an anonymous admin) or as a channel: Telegram shows the bot
# a stand-in account shared by everyone who does that, so nothing can be theirs.
POSTED_AS_CHAT = (
    "You are posting as the group or a channel, so I cannot tell who you are and nothing "
    "I did would be yours. Send it from your own account (anonymous admins: turn off "
    "“Remain anonymous” in your admin rights)."
)
MANAGER_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


class TelegramHandlers:
    """The PTB callbacks (``on_command``, ``on_media``, ``on_text``, ``on_button``) and
    ``deliver`` for job notifications, over one bot core."""

    def __init__(
        self,
        core: StyleBot,
        bot: Bot,
        *,
        max_upload_bytes: int,
        bot_username: Callable[[], str | None],
        sender: FloodAwareSender,
        board: JobStatusBoard,
        album_quiet_s: float = 1.0,
        spawn: Spawn | None = None,
    ) -> None:
        self.core = PlatformCore(core, telegram_spelling)
        self.bot = bot
        self.max_upload_bytes = max_upload_bytes
        self._bot_username = bot_username
        self.sender = sender
        self.files = Downloads(bot, sender, max_upload_bytes)
        self.chat = ChatOutput(bot, sender, board)
        self.consent = ConsentFlow(self.core, self.chat)
        self.buttons = Buttons(self.core, self.chat, self.consent)
        self.images = ImageFlows(self.core, self.chat, self.consent, self.files)
        self.albums = AlbumCollector(self._on_images, quiet_s=album_quiet_s, spawn=spawn)

    async def deliver(self, notification: Notification) -> None:
        await self.chat.deliver(self.core.spelled(notification))

    # -- incoming messages -------------------------------------------------------------------

    async def on_command(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.text is None or message.from_user is None:
            return
        parsed = split_command(message.text, self._bot_username())
        if parsed is None:  # addressed to another bot
            return
        conversation = Conversation.of(message, message.from_user)
        async with self._guard(conversation):
            if message.sender_chat is not None and parsed.name not in ("start", "help"):
                await self.chat.show(conversation, ErrorReply(POSTED_AS_CHAT))
                return
            await self._run_command(conversation, parsed, message)

    async def on_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text: only private chats get a hint; groups talk among themselves."""
        message = update.message
        if message is None or message.from_user is None or message.chat.type != ChatType.PRIVATE:
            return
        conversation = Conversation.of(message, message.from_user)
        async with self._guard(conversation):
            if message.text and self._replies_to_caption_listing(message):
                await self._edit_captions(conversation, message.text)
                return
            await self.chat.show(
                conversation,
                TextReply("Send me images to train a style, or a command: /help lists them."),
            )

    def _replies_to_caption_listing(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(
            self._replies_to_me(message)
            and replied is not None
            and replied.text
            and replied.text.startswith(WAITING_LISTING)
        )

    async def _edit_captions(self, conversation: Conversation, text: str) -> None:
        """A reply to the caption listing: a line ``NUMBER CAPTION`` for each change."""
        try:
            edits = caption_edits(conversation.requester, text)
        except CommandSyntaxError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        answers = [await self.core.handle(edit) for edit in edits]
        said = "\n".join(getattr(answer, "text", "") for answer in answers)
        failed = any(isinstance(answer, ErrorReply) for answer in answers)
        await self.chat.show(conversation, ErrorReply(said) if failed else TextReply(said))

    async def on_media(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or message.from_user is None:
            return
        if message.media_group_id:
            self.albums.add(message)
            return
        await self._on_images([message])

    async def _on_images(self, messages: Sequence[Message]) -> None:
        """Photos or files, one or an album: reference images, or images to /verify."""
        first = messages[0]
        if first.from_user is None:
            return
        conversation = Conversation.of(first, first.from_user)
        username = self._bot_username()
        command = next(
            (
                parsed
                for message in messages
                if message.caption and (parsed := split_command(message.caption, username))
            ),
            None,
        )
        if conversation.in_group and command is None and not self._replies_to_me(first):
            # People share pictures in groups all the time; only images addressed to the
            # bot (a command caption, or a reply to it) are uploads.
            return
        async with self._guard(conversation):
            if first.sender_chat is not None:
                await self.chat.show(conversation, ErrorReply(POSTED_AS_CHAT))
            elif command is not None and command.name == "verify":
                for message in messages:
                    await self.images.verify(conversation, message)
            elif command is not None and command.name == "optout":
                await self.images.opt_out(conversation, messages)
            elif command is not None and command.name == "repaint" and len(messages) == 2:
                await self.images.repaint_with_mask(conversation, messages, command)
            elif command is not None and command.name in ("restyle", "extend", "repaint", "sketch"):
                for message in messages:
                    await self.images.restyle(conversation, message, command)
            elif command is not None and command.name not in UPLOAD_COMMANDS:
                await self.chat.show(
                    conversation,
                    ErrorReply(
                        "To train a style from these images, caption them /train NAME "
                        f"(not /{command.name})."
                    ),
                )
            else:
                await self.images.upload(conversation, messages, command)

    def _replies_to_me(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == self.bot.id)

    # -- typed commands ------------------------------------------------------------------------

    async def _run_command(
        self, conversation: Conversation, typed: TextCommand, message: Message
    ) -> None:
        if typed.name not in TELEGRAM_COMMANDS:
            if not conversation.in_group:  # in groups it may be another bot's command
                await self.chat.show(
                    conversation, ErrorReply(f"Unknown command /{typed.name}. /help lists them.")
                )
            return
        try:
            parsed = parse(typed, conversation.requester, replied_user(message))
        except CommandSyntaxError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        match parsed:
            case ShowHelp(admin=admin):
                await self.chat.show(conversation, TextReply(ADMIN_HELP if admin else HELP_TEXT))
            case NeedsFiles(verb="verify"):
                await self.images.verify_reply(conversation, message)
            case NeedsFiles(verb="optout"):
                await self.images.optout_reply(conversation, message)
            case RestyleArgs():
                await self.images.restyle_reply(conversation, message, typed)
            case NeedsFiles() | Quit() | ActAs():  # upload: files come with their caption
                await self.chat.show(conversation, TextReply(HOW_TO_UPLOAD))
            case AskConsent():
                await self.consent.ask(conversation, CONSENT_AGAIN, from_photos=False)
            case ConfirmConsent():
                await self.consent.confirm_typed(conversation, parsed)
            case TrainStyle():
                await self._train(conversation, parsed)
            case DeleteStyle():
                await self._ask_delete_style(conversation, parsed)
            case EraseMyData():
                await self._forget_me(conversation)
            case _:
                if isinstance(parsed, DiscardUploads):
                    self.consent.forget(conversation)
                elif needs_manager_check(parsed) and conversation.in_group:
                    manages = await self._manages_chat(conversation)
                    parsed = dataclasses.replace(parsed, manages_server=manages)
                reply = await self.core.handle(parsed)
                await self.chat.show(
                    conversation, reply, command=f"/{typed.name} {typed.args}".strip()
                )

    async def _train(self, conversation: Conversation, command: TrainStyle) -> None:
        # An album sent just before may still be being collected: let it arrive first.
        await self.albums.settled(conversation.chat_id, conversation.user_id)
        if self.consent.is_open(conversation):
            self.consent.name_style(conversation, command)
            await self.chat.show(
                conversation,
                TextReply(
                    f"Pick a licence and press Confirm on the question above; training "
                    f"{command.name} starts then."
                ),
            )
            return
        await self.chat.show(conversation, await self.core.handle(command))

    async def _ask_delete_style(self, conversation: Conversation, command: DeleteStyle) -> None:
        """Ask first: deleting removes images, weights and outputs for good."""
        try:
            keyboard = delete_style_keyboard(conversation.user_id, command.name)
        except ValueError:  # too long for a button, so not a valid name: the core says
            await self.chat.show(conversation, await self.core.handle(command))
            return
        await self.chat.send_text(
            conversation,
            f"Delete style {command.name} with its training images, its weights and every "
            "image made with it? This cannot be undone.",
            keyboard=keyboard,
        )

    async def _manages_chat(self, conversation: Conversation) -> bool:
        """Whether the sender is the group's creator or one of its administrators.

        Asked of Telegram for each admin command rather than cached: admin commands are
        rare, and a demoted administrator loses the right at once. When Telegram cannot
        say, the answer is no (the core then refuses, changing nothing).
        """
        chat_id, user_id = conversation.chat_id, conversation.user_id
        try:
            member = await self.sender.call(
                chat_id, lambda: self.bot.get_chat_member(chat_id, user_id), "get chat member"
            )
        except TelegramError as error:
            log.warning("a member's status in group %s not known: %s", chat_id, error)
            return False
        return member.status in MANAGER_STATUSES

    async def _forget_me(self, conversation: Conversation) -> None:
        """The core says what would go; only the asker's press on Erase erases it (typed
        ``/forgetme confirm`` asks too: here the button is the confirmation)."""
        reply = await self.core.handle(EraseMyData(conversation.requester))
        if not isinstance(reply, ErasureConfirmation):
            await self.chat.show(conversation, reply)
            return
        keyboard = erase_keyboard(conversation.user_id)

        async def ask(to: Conversation) -> None:
            await self.chat.send_text(to, reply.text, keyboard=keyboard)

        # It lists every style of theirs (private ones too): for the asker's eyes only.
        await self.chat.to_asker(
            conversation, ask, what="the /forgetme question", command="/forgetme"
        )

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.buttons.on_button(update, context)

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _guard(self, conversation: Conversation) -> AsyncIterator[None]:
        """Log what went wrong on our side and tell the user in plain words."""
        try:
            yield
        except Exception:
            log.exception("update in %s failed", chat_in_logs(conversation.chat_id))
            with contextlib.suppress(Exception):
                await self.chat.send_text(conversation, SORRY)
