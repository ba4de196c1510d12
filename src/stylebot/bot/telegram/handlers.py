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

from telegram import Bot, CallbackQuery, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from stylebot.bot.core import (
    LICENCES,
    TERMS_TEXT,
    TERMS_VERSION,
    CancelJob,
    ConsentRequest,
    DeleteStyle,
    DiscardUploads,
    ErrorReply,
    ExportStyle,
    IncomingFile,
    ListStyles,
    Notification,
    ShareStyle,
    ShowStatus,
    StyleBot,
    StyleInfo,
    TextReply,
    TrainStyle,
    UnshareStyle,
    UploadImages,
    Verify,
    VerifyReport,
    VerifyVerdict,
)
from stylebot.bot.core.commands import (
    Command,
    DeleteOutput,
    EraseMyData,
    OptOut,
    OutputInfo,
    RerollOutput,
    VaryOutput,
)
from stylebot.bot.core.replies import ErasureConfirmation
from stylebot.bot.core.text_commands import CommandSyntaxError, parse_imagine, split_command
from stylebot.bot.telegram import admin as admin_commands
from stylebot.bot.telegram.admin import AdminUsageError, RepliedUser, parse_admin
from stylebot.bot.telegram.albums import AlbumCollector, Spawn
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.consent import ConsentFlow
from stylebot.bot.telegram.conversation import Conversation, chat_in_logs, text_of
from stylebot.bot.telegram.delivery import FloodAwareSender, JobStatusBoard
from stylebot.bot.telegram.render import (
    HELP_TEXT,
    MAX_ALERT_CHARS,
    ConsentAction,
    EraseAction,
    OutputAction,
    StyleDeleteAction,
    delete_style_keyboard,
    erase_keyboard,
    fit,
    parse_callback,
)

log = logging.getLogger(__name__)

# Commands whose caption on images means "these are reference images for a style".
UPLOAD_COMMANDS = ("train", "upload")
STYLE_VERBS = ("info", "share", "unshare", "delete", "export")
SORRY = "Sorry, something went wrong on my side and nothing was changed. Please try again later."
# Someone posting as the group (an anonymous admin) or as a channel: Telegram shows the bot
# a stand-in account shared by everyone who does that, so nothing can be theirs.
POSTED_AS_CHAT = (
    "You are posting as the group or a channel, so I cannot tell who you are and nothing "
    "I did would be yours. Send it from your own account (anonymous admins: turn off "
    "“Remain anonymous” in your admin rights)."
)
MANAGER_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


def replied_message(message: Message) -> Message | None:
    """The message ``message`` answers. In a forum topic Telegram sets the topic's first
    (service) message as ``reply_to_message`` of every message that answers nothing:
    that is no reply, and taking it for one would act on the topic's creator."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


class UploadRefused(Exception):
    """A file we will not download; the message says why, for the user."""


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
        self.core = core
        self.bot = bot
        self.max_upload_bytes = max_upload_bytes
        self._bot_username = bot_username
        self.sender = sender
        self.chat = ChatOutput(bot, sender, board)
        self.consent = ConsentFlow(core, self.chat)
        self.albums = AlbumCollector(self._on_images, quiet_s=album_quiet_s, spawn=spawn)
        # /forgetme questions whose Erase is being handled, so a double press counts once.
        self._erasing: set[tuple[int, int]] = set()

    async def deliver(self, notification: Notification) -> None:
        await self.chat.deliver(notification)

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
            await self._run_command(conversation, parsed.name, parsed.args, message)

    async def on_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text: only private chats get a hint; groups talk among themselves."""
        message = update.message
        if message is None or message.from_user is None or message.chat.type != ChatType.PRIVATE:
            return
        conversation = Conversation.of(message, message.from_user)
        async with self._guard(conversation):
            await self.chat.show(
                conversation,
                TextReply("Send me images to train a style, or a command: /help lists them."),
            )

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
                    await self._verify_message(conversation, message)
            elif command is not None and command.name == "optout":
                await self._opt_out(conversation, messages)
            elif command is not None and command.name not in UPLOAD_COMMANDS:
                await self.chat.show(
                    conversation,
                    ErrorReply(
                        "To train a style from these images, caption them /train NAME "
                        f"(not /{command.name})."
                    ),
                )
            else:
                style_name = command.args.split()[0] if command and command.args else None
                await self._upload(conversation, messages, style_name)

    async def _opt_out(self, conversation: Conversation, messages: Sequence[Message]) -> None:
        """Register the images of these messages (the sender's own) as the artist's."""
        try:
            files = [await self._download(message) for message in messages]
        except UploadRefused as refused:
            await self.chat.show(conversation, ErrorReply(str(refused)))
            return
        await self.chat.show(
            conversation, await self.core.handle(OptOut(conversation.requester, tuple(files)))
        )

    def _replies_to_me(self, message: Message) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == self.bot.id)

    async def _upload(
        self, conversation: Conversation, messages: Sequence[Message], style_name: str | None
    ) -> None:
        try:
            files = [await self._download(message) for message in messages]
        except UploadRefused as refused:
            await self.chat.show(conversation, ErrorReply(str(refused)))
            return
        reply = await self.core.handle(UploadImages(conversation.requester, tuple(files)))
        if not isinstance(reply, ConsentRequest):
            await self.chat.show(conversation, reply)
            return
        if style_name:
            self.consent.name_style(conversation, style_name)
        from_photos = any(message.photo for message in messages)
        await self.consent.ask(conversation, reply, from_photos=from_photos)

    async def _download(self, message: Message) -> IncomingFile:
        """The file of a photo or document message, refused early when it is too big."""
        if message.photo:
            largest = message.photo[-1]
            file_id, size = largest.file_id, largest.file_size
            filename = f"photo-{largest.file_unique_id}.jpg"
        elif message.document:
            file_id, size = message.document.file_id, message.document.file_size
            filename = message.document.file_name or f"file-{message.document.file_unique_id}"
        else:
            raise UploadRefused("That message has no image. Send a photo or an image file.")
        limit_mb = self.max_upload_bytes / 1024 / 1024
        too_big = (
            f"{filename} is larger than the {limit_mb:.0f} MB limit. Nothing was saved; send "
            "a smaller image."
        )
        # Telegram tells the size up front: no need to download what we would refuse.
        if size is not None and size > self.max_upload_bytes:
            raise UploadRefused(too_big)
        try:
            telegram_file = await self.sender.call(
                message.chat_id, lambda: self.bot.get_file(file_id), "get file"
            )
        except BadRequest as error:
            if "too big" in error.message.lower():  # Telegram serves bots at most 20 MB
                raise UploadRefused(too_big) from error
            raise
        data = bytes(await telegram_file.download_as_bytearray())
        if len(data) > self.max_upload_bytes:
            raise UploadRefused(too_big)
        return IncomingFile(filename, data)

    # -- typed commands ------------------------------------------------------------------------

    async def _run_command(
        self, conversation: Conversation, name: str, args: str, message: Message
    ) -> None:
        me = conversation.requester
        command: Command | None = None
        match name:
            case "start" | "help":
                await self.chat.show(conversation, TextReply(HELP_TEXT))
            case "train":
                await self._train(conversation, args)
            case "imagine":
                try:
                    parsed = parse_imagine(args)
                except CommandSyntaxError as error:
                    await self.chat.show(conversation, ErrorReply(str(error)))
                    return
                command = parsed.command(me)
            case "styles":
                command = ListStyles(me)
            case "style":
                await self._style(conversation, args)
            case "verify":
                replied = replied_message(message)
                if replied is None or not (replied.photo or replied.document):
                    await self.chat.show(
                        conversation,
                        ErrorReply(
                            "Reply /verify to an image (best the PNG file I sent), or send "
                            "the image with /verify as its caption."
                        ),
                    )
                    return
                await self._verify_message(conversation, replied)
            case "status":
                command = ShowStatus(me)
            case "cancel":
                command = CancelJob(me, args.split()[0] if args else None)
            case "consent":
                await self._consent(conversation, args)
            case "discard":
                self.consent.forget(conversation)
                command = DiscardUploads(me)
            case "optout":
                await self._optout_reply(conversation, message)
            case "admin":
                await self._admin(conversation, args, message)
            case "forgetme":
                await self._forget_me(conversation, args)
            case "upload":
                await self.chat.show(
                    conversation,
                    TextReply(
                        "Send the images as files (📎 → File) or photos, with /train NAME as "
                        "the caption."
                    ),
                )
            case _:
                if not conversation.in_group:  # in groups it may be another bot's command
                    await self.chat.show(
                        conversation, ErrorReply(f"Unknown command /{name}. /help lists them.")
                    )
        if command is not None:
            reply = await self.core.handle(command)
            await self.chat.show(conversation, reply, command=f"/{name}")

    async def _train(self, conversation: Conversation, args: str) -> None:
        if not args:
            await self.chat.show(conversation, ErrorReply("Name the style: /train NAME"))
            return
        name = args.split()[0]
        # An album sent just before may still be being collected: let it arrive first.
        await self.albums.settled(conversation.chat_id, conversation.user_id)
        if self.consent.is_open(conversation):
            self.consent.name_style(conversation, name)
            await self.chat.show(
                conversation,
                TextReply(
                    f"Pick a licence and press Confirm on the question above; training {name} "
                    "starts then."
                ),
            )
            return
        reply = await self.core.handle(TrainStyle(conversation.requester, name))
        await self.chat.show(conversation, reply)

    async def _style(self, conversation: Conversation, args: str) -> None:
        me = conversation.requester
        words = args.split()
        if len(words) < 2 or words[0].lower() not in STYLE_VERBS:
            await self.chat.show(
                conversation, ErrorReply("Use /style info|share|unshare|delete|export NAME.")
            )
            return
        verb, name = words[0].lower(), words[1]
        match verb:
            case "info":
                reply = await self.core.handle(StyleInfo(me, name))
            case "share":
                public = any(word.lower() == "public" for word in words[2:])
                reply = await self.core.handle(ShareStyle(me, name, public=public))
            case "unshare":
                reply = await self.core.handle(UnshareStyle(me, name))
            case "export":
                reply = await self.core.handle(ExportStyle(me, name))
            case _:  # delete: ask first, it removes images, weights and outputs for good
                try:
                    keyboard = delete_style_keyboard(conversation.user_id, name)
                except ValueError:  # too long for a button, so not a valid name: the core says
                    reply = await self.core.handle(DeleteStyle(me, name))
                else:
                    await self.chat.send_text(
                        conversation,
                        f"Delete style {name} with its training images, its weights and every "
                        "image made with it? This cannot be undone.",
                        keyboard=keyboard,
                    )
                    return
        await self.chat.show(conversation, reply, command=f"/style {verb} {name}")

    async def _optout_reply(self, conversation: Conversation, message: Message) -> None:
        """``/optout`` typed as a reply to one's own message with an image."""
        replied = replied_message(message)
        if replied is None or not (replied.photo or replied.document):
            await self.chat.show(
                conversation,
                ErrorReply(
                    "Send images you made with /optout as their caption, or reply /optout "
                    "to your own message with an image. Nothing was registered."
                ),
            )
            return
        # Registering marks the images as the sender's work, which locks everyone else out
        # of them: only one's own posts may be registered.
        if replied.from_user is None or replied.from_user.id != conversation.user_id:
            await self.chat.show(
                conversation,
                ErrorReply(
                    "You can only opt out images you posted yourself. Nothing was registered."
                ),
            )
            return
        await self._opt_out(conversation, [replied])

    async def _admin(self, conversation: Conversation, args: str, message: Message) -> None:
        replied = replied_message(message)
        replied_user = None
        if replied is not None and replied.from_user is not None:
            replied_user = RepliedUser(
                replied.from_user.id,
                is_bot=replied.from_user.is_bot or replied.sender_chat is not None,
            )
        try:
            command = parse_admin(conversation.requester, args, replied_user)
        except AdminUsageError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        if command is None:
            await self.chat.show(conversation, TextReply(admin_commands.HELP))
            return
        if admin_commands.needs_manager_check(command) and conversation.in_group:
            manages = await self._manages_chat(conversation)
            command = dataclasses.replace(command, manages_server=manages)
        reply = await self.core.handle(command)
        await self.chat.show(conversation, reply, command=f"/admin {args}".strip())

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

    async def _forget_me(self, conversation: Conversation, args: str) -> None:
        """The core says what would go; only the asker's press on Erase erases it."""
        if args:
            await self.chat.show(
                conversation,
                ErrorReply("Send /forgetme alone: I show what it erases and ask first."),
            )
            return
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

    async def _consent(self, conversation: Conversation, args: str) -> None:
        """`/consent LICENCE` confirms like the button; `/consent` alone shows the buttons."""
        if args:
            await self.consent.confirm_typed(conversation, args.strip())
            return
        request = ConsentRequest(
            text="Confirm your rights to the images waiting for training.",
            terms=TERMS_TEXT,
            terms_version=TERMS_VERSION,
            licences=LICENCES,
            image_count=0,
        )
        await self.consent.ask(conversation, request, from_photos=False)

    async def _verify_message(self, conversation: Conversation, message: Message) -> None:
        try:
            file = await self._download(message)
        except UploadRefused as refused:
            await self.chat.show(conversation, ErrorReply(str(refused)))
            return
        reply = await self.core.handle(Verify(conversation.requester, file))
        if (
            isinstance(reply, VerifyReport)
            and reply.verdict is VerifyVerdict.NO_MARK
            and message.photo
        ):
            reply = dataclasses.replace(
                reply,
                text=reply.text + " Telegram re-compresses photos, which can erase the "
                "watermark: try the PNG file instead.",
            )
        await self.chat.show(conversation, reply)

    # -- buttons -------------------------------------------------------------------------------

    async def on_button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        action = parse_callback(query.data)
        if action is None:
            await self.chat.answer(query, "This button no longer works.")
            return
        try:
            match action:
                case ConsentAction():
                    await self.consent.on_button(query, action)
                case OutputAction():
                    await self._output_button(query, action)
                case StyleDeleteAction():
                    await self._style_delete_button(query, action)
                case EraseAction():
                    await self._erase_button(query, action)
        except Exception:
            # Not its data (a style's name may be in it), nor its id (Telegram's callback
            # query ids carry the presser's user id): the kind of button.
            log.exception("a %s button press failed", type(action).__name__)
            if self.chat.answered(query):
                await self._apologise_in_chat(query)  # Telegram takes one answer per press
            else:
                await self.chat.answer(query, SORRY, alert=True)
        finally:
            self.chat.forget_answer(query)

    async def _apologise_in_chat(self, query: CallbackQuery) -> None:
        """SORRY as a message answering the one whose button was pressed."""
        message = query.message
        if message is None:  # only inline-mode messages have none, and the bot sends none
            return
        conversation = Conversation.of(message, query.from_user)
        with contextlib.suppress(Exception):  # already logged; nothing more to tell
            await self.chat.send_text(conversation, SORRY)

    async def _output_button(self, query: CallbackQuery, action: OutputAction) -> None:
        """Re-roll, vary, info or delete under a result: anyone may press, the core decides."""
        message = query.message
        if not isinstance(message, Message):
            await self.chat.answer(query, "That image is too old to act on.")
            return
        here = Conversation.of(message, query.from_user)  # answers go under the image
        me = here.requester
        match action.verb:
            case "reroll":
                reply = await self.core.handle(RerollOutput(me, action.output_id))
            case "vary":
                reply = await self.core.handle(VaryOutput(me, action.output_id))
            case "info":
                reply = await self.core.handle(OutputInfo(me, action.output_id))
            case "delete":
                reply = await self.core.handle(DeleteOutput(me, action.output_id))
                if not isinstance(reply, ErrorReply):
                    await self.chat.answer(query, fit(text_of(reply), MAX_ALERT_CHARS))
                    await self.chat.remove_output(action.output_id, message)
                    return
        if isinstance(reply, ErrorReply) and len(reply.text) <= MAX_ALERT_CHARS:
            await self.chat.answer(query, reply.text, alert=True)
            return
        await self.chat.answer(query)
        await self.chat.show(here, reply)

    async def _style_delete_button(self, query: CallbackQuery, action: StyleDeleteAction) -> None:
        message = query.message
        if query.from_user.id != action.user_id:
            await self.chat.answer(query, "Only the person who asked can answer this.", alert=True)
            return
        if not isinstance(message, Message):
            await self.chat.answer(query, "This question expired; ask again.")
            return
        await self.chat.answer(query)
        if not action.confirmed:
            await self.chat.close_question(message, f"Kept style {action.name}.")
            return
        requester = Conversation.of(message, query.from_user).requester
        reply = await self.core.handle(DeleteStyle(requester, action.name))
        outcome = text_of(reply)
        await self.chat.close_question(
            message, f"⚠️ {outcome}" if isinstance(reply, ErrorReply) else outcome
        )

    async def _erase_button(self, query: CallbackQuery, action: EraseAction) -> None:
        message = query.message
        if query.from_user.id != action.user_id:
            await self.chat.answer(query, "Only the person who asked can answer this.", alert=True)
            return
        if not isinstance(message, Message):
            await self.chat.answer(query, "This question expired; send /forgetme again.")
            return
        await self.chat.answer(query)
        if not action.confirmed:
            await self.chat.close_question(message, "Kept everything; nothing was erased.")
            return
        question = (message.chat_id, message.message_id)
        if question in self._erasing:
            return
        self._erasing.add(question)
        try:
            conversation = Conversation.of(message, query.from_user, answering=False)
            reply = await self.core.handle(EraseMyData(conversation.requester, confirmed=True))
            if not isinstance(reply, ErrorReply):
                # Their waiting images are gone with everything else, in every chat.
                self.consent.forget_user(conversation.user_id)
            outcome = text_of(reply)
            await self.chat.close_question(
                message, f"⚠️ {outcome}" if isinstance(reply, ErrorReply) else outcome
            )
        finally:
            self._erasing.discard(question)

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
