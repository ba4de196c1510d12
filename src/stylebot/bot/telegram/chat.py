"""Putting the core's replies into a Telegram chat.

:class:`ChatOutput` is the one place that posts: texts, files, job status messages and
results, each through the flood-aware sender. Texts go without ``parse_mode``, so
user-given prompts and names never break on markup (nor make any: Telegram shows them
as typed). A text longer than a message goes in several, cut between lines. A reply the
core marks private is never shown to a group: it goes to the asker's private chat.

Over 400 lines on purpose: every post goes through this one class, so none can skip the
flood control, the private-only rule or a group's migrated chat id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
)
from telegram.error import BadRequest, ChatMigrated, NetworkError, TelegramError

from stylebot.bot.core import replies
from stylebot.bot.core.delivery import (
    PartsSentHere,
    PlatformUnreachable,
    Undeliverable,
    image_part,
)
from stylebot.bot.core.paging import keep_last, pages
from stylebot.bot.telegram.conversation import Conversation, reply_parameters
from stylebot.bot.telegram.delivery import (
    FloodAwareSender,
    JobStatusBoard,
    PrivatePreviews,
    cannot_write_to,
    is_too_large,
    not_reached,
)
from stylebot.bot.telegram.photos import photo_to_show
from stylebot.bot.telegram.render import (
    MAX_ALERT_CHARS,
    MAX_BOT_UPLOAD_BYTES,
    MAX_CAPTION_CHARS,
    MAX_TEXT_CHARS,
    consent_keyboard,
    consent_text,
    document_caption,
    file_too_big_text,
    fit,
    output_keyboard,
    photo_caption,
    private_chat_closed_text,
    progress_text,
    quiet_mentions,
    sent_privately_text,
    style_choices_text,
)

log = logging.getLogger(__name__)


class ChatOutput:
    """Renders replies into chats and delivers job notifications."""

    def __init__(
        self,
        bot: Bot,
        sender: FloodAwareSender,
        board: JobStatusBoard,
        *,
        remember_outputs: int = 1000,
        max_send_bytes: int = MAX_BOT_UPLOAD_BYTES,
    ) -> None:
        self.bot = bot
        self.sender = sender
        self.board = board
        self.previews = PrivatePreviews(bot, sender)
        self.max_send_bytes = max_send_bytes
        # Callback queries answered (or tried) in the press being handled: Telegram takes
        # one answer per query, so an error after it is told in the chat instead.
        self._answered: set[str] = set()
        # output id -> the (chat, message) pairs showing it, to remove them on delete.
        self._output_messages: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._remember_outputs = remember_outputs

    async def deliver(self, notification: replies.Notification) -> None:
        """Show a job's progress or result where the job was asked for.

        Raises PlatformUnreachable when Telegram could not be reached (DeliveryFailed is
        one), so the front end keeps the event and delivers it again once it can be, and
        Undeliverable when Telegram refuses
        what was sent (the front end tells the member why). A chat that refuses for good
        (the bot was removed or blocked) is logged and skipped: nothing reaches it.
        """
        to = notification.to
        conversation = Conversation(int(to.chat_id), to)
        try:
            try:
                await self.show(conversation, notification.reply, sent=notification.sent)
            except ChatMigrated as migrated:
                # The group became a supergroup with a new id: its members are there now.
                log.warning(
                    "group %s became supergroup %s; delivering the job update there. Styles "
                    "shared with the old group id are not re-mapped: their owners need to "
                    "share them again in the supergroup",
                    to.chat_id,
                    migrated.new_chat_id,
                )
                await self.show(
                    conversation.moved_to(migrated.new_chat_id),
                    notification.reply,
                    sent=notification.sent,
                )
        except TelegramError as error:
            if not_reached(error):
                raise PlatformUnreachable(f"Telegram: {error.message}") from error
            if not cannot_write_to(error):
                raise Undeliverable(f"Telegram refused it ({error.message})") from error
            # Named by job: a private chat's id is its member's Telegram id.
            log.error("update of job %s refused by Telegram (%s)", _job_of(notification), error)

    async def show(
        self,
        conversation: Conversation,
        reply: replies.Reply,
        *,
        command: str | None = None,
        sent: replies.SentParts | None = None,
    ) -> None:
        """Show ``reply`` in the conversation; one the core marks private, asked in a
        group, goes to the asker's private chat instead (``command`` is what they would
        send again if the bot cannot write there yet)."""
        if (
            replies.is_private(reply)
            and conversation.in_group
            and not isinstance(reply, replies.FileReply)
        ):
            if isinstance(reply, replies.JobFinished) and reply.public_text:
                await self._finish_in_private(conversation, reply)
                return

            async def show_privately(to: Conversation) -> None:
                await self._show(to, reply)

            await self.to_asker(conversation, show_privately, what="my answer", command=command)
            return
        await self._show(conversation, reply, sent or PartsSentHere())

    async def _finish_in_private(
        self, conversation: Conversation, reply: replies.JobFinished
    ) -> None:
        """The job's status message in the group ends with the core's neutral line; the
        owner's text goes to their private chat, or nowhere when it is closed (the
        neutral line already points at /styles and /status)."""
        await self.board.finish(
            reply.job_id, conversation.chat_id, reply.public_text, in_group=True
        )
        try:
            await self._show(conversation.private(), reply)
        except TelegramError as error:
            if not cannot_write_to(error):
                raise
            log.info("end of job %s not sent privately: %s", reply.job_id, error)

    async def _show(
        self,
        conversation: Conversation,
        reply: replies.Reply,
        sent: replies.SentParts | None = None,
    ) -> None:
        chat_id, in_group = conversation.chat_id, conversation.in_group
        match reply:
            case replies.ErrorReply(text=text):
                await self.send_text(conversation, f"⚠️ {text}")
            # Uploads ask through ConsentFlow; this is the plain form.
            case replies.ConsentRequest():
                await self.send_text(
                    conversation,
                    consent_text(reply, from_photos=False, style_name=None),
                    keyboard=consent_keyboard(conversation.user_id, reply.licences),
                )
            case replies.JobQueued():
                await self.board.open(
                    reply.job_id,
                    chat_id,
                    reply.text,
                    in_group=in_group,
                    reply_to=conversation.reply_to,
                )
            case replies.JobProgress():
                self.board.progress(reply.job_id, chat_id, progress_text(reply), in_group=in_group)
            case replies.JobFinished():
                text = reply.text if reply.ok else f"⚠️ {reply.text}"
                await self.board.finish(reply.job_id, chat_id, text, in_group=in_group)
            case replies.ImagesReady(preview_of=str(training_job_id)):
                # A style in training is its owner's: never shown to a group (delivery.py).
                await self.previews.send(
                    chat_id=chat_id,
                    user_id=conversation.user_id,
                    display_name=conversation.requester.display_name,
                    in_group=in_group,
                    training_job_id=training_job_id,
                    text=reply.text,
                    image=reply.images[0].data,
                )
            case replies.ImagesReady():
                self._check_sendable(reply)  # before anything is sent: never half a result
                await self._send_result(chat_id, in_group, reply, sent or PartsSentHere())
            case replies.FileReply():
                await self._send_file(conversation, reply)
            case replies.StyleChoices():
                await self.send_text(conversation, style_choices_text(reply))
            # /forgetme shows its question with buttons itself (handlers); this is the text.
            case (
                replies.TextReply(text=text)
                | replies.VerifyReport(text=text)
                | replies.ErasureConfirmation(text=text)
            ):
                await self.send_text(conversation, text)

    async def _send_file(self, conversation: Conversation, reply: replies.FileReply) -> None:
        """A style's weights, for its owner only (in a group: to their private chat), and
        refused up front when Telegram would not take a file that big."""
        size = len(reply.data)
        if size > self.max_send_bytes:
            too_big = file_too_big_text(reply.filename, size, self.max_send_bytes)
            await self.send_text(conversation, f"⚠️ {too_big}")
            return

        async def send(to: Conversation) -> None:
            await self.sender.call(
                to.chat_id,
                lambda: self.bot.send_document(
                    to.chat_id,
                    reply.data,
                    filename=reply.filename,
                    caption=fit(
                        quiet_mentions(reply.text, self._own_username()), MAX_CAPTION_CHARS
                    ),
                    reply_parameters=reply_parameters(to.reply_to),
                ),
                "send file",
            )

        try:
            await self.to_asker(conversation, send, what="the style file", command="/style export")
        except NetworkError as error:
            if not is_too_large(error):
                raise
            # Not the file's name: it is the style's (`<name>.safetensors`).
            log.warning("a style export refused by Telegram as too large: %s", error)
            too_big = file_too_big_text(reply.filename, size, MAX_BOT_UPLOAD_BYTES)
            await self.send_text(conversation, f"⚠️ {too_big}")

    async def to_asker(
        self,
        conversation: Conversation,
        send: Callable[[Conversation], Awaitable[object]],
        *,
        what: str,
        command: str | None,
    ) -> bool:
        """``send`` what is for the asker's eyes only, and say whether it reached them.

        In a private chat it goes there. A group cannot hold a message for one member, so
        from a group it goes to the asker's private chat with the bot and the group gets a
        short note; when the bot cannot write there (they never pressed Start, or blocked
        it) the group is told how to open it, and nothing is sent.
        """
        if not conversation.in_group:
            await send(conversation)
            return True
        requester = conversation.requester
        try:
            await send(conversation.private())
        except TelegramError as error:
            if not cannot_write_to(error):
                raise
            log.info("%s not sent privately: %s", what, error)
            hint = private_chat_closed_text(
                requester.display_name, self.bot.username, what, command
            )
            await self.send_text(conversation, hint)
            return False
        await self.send_text(conversation, sent_privately_text(requester.display_name, what))
        return True

    def _own_username(self) -> str | None:
        """The bot's @name, once it has asked Telegram who it is (None before)."""
        try:
            return self.bot.username
        except RuntimeError:  # python-telegram-bot: the Bot is not initialized yet
            return None

    async def send_text(
        self,
        conversation: Conversation,
        text: str,
        *,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> Message:
        """Send ``text``; longer than a message, as several cut between lines (the first
        answers the asker's message, the last has the buttons). Returns the last."""
        chat_id = conversation.chat_id
        text = quiet_mentions(text, self._own_username())
        pieces = [piece for piece in pages(text, MAX_TEXT_CHARS) if piece.strip()] or ["…"]
        sent: Message | None = None
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            sent = await self._send_piece(
                chat_id,
                piece,
                keyboard if last else None,
                conversation.reply_to if number == 0 else None,
            )
        assert sent is not None  # there is always one piece
        return sent

    async def _send_piece(
        self,
        chat_id: int,
        text: str,
        keyboard: InlineKeyboardMarkup | None,
        reply_to: int | None,
    ) -> Message:
        return await self.sender.call(
            chat_id,
            lambda: self.bot.send_message(
                chat_id,
                text,
                reply_markup=keyboard,
                reply_parameters=reply_parameters(reply_to),
            ),
            "send message",
        )

    async def close_question(self, message: Message, outcome: str) -> None:
        """Append the outcome to a question and drop its buttons, so nobody presses again.
        A long question is shortened to make room: the outcome is never what is cut."""
        text = keep_last(message.text or "", outcome, MAX_TEXT_CHARS)
        with contextlib.suppress(BadRequest):  # deleted meanwhile: nothing left to close
            await self.sender.call(
                message.chat_id,
                lambda: self.bot.edit_message_text(
                    text, chat_id=message.chat_id, message_id=message.message_id
                ),
                "close question",
            )

    async def drop_buttons(self, chat_id: int, message_id: int) -> None:
        """Best effort: a stale keyboard is confusing, not harmful."""
        with contextlib.suppress(TelegramError):
            await self.bot.edit_message_reply_markup(chat_id, message_id)

    async def answer(
        self, query: CallbackQuery, text: str | None = None, *, alert: bool = False
    ) -> None:
        """Answer a button press once; a stale query (Telegram gave up waiting) is ignored."""
        self._answered.add(query.id)
        try:
            await query.answer(fit(text, MAX_ALERT_CHARS) if text else None, show_alert=alert)
        except TelegramError as error:
            # Not the query's id: Telegram's carry the presser's user id.
            log.info("a button press not answered: %s", error)

    def answered(self, query: CallbackQuery) -> bool:
        """Whether ``query`` was answered (or that was tried): it takes no second answer."""
        return query.id in self._answered

    def forget_answer(self, query: CallbackQuery) -> None:
        """The press is handled: nothing will answer its query any more."""
        self._answered.discard(query.id)

    async def remove_output(self, output_id: str, pressed: Message | None) -> None:
        """Delete the photo and file that showed a deleted output. After a restart only
        the message whose button was pressed is known."""
        shown = self._output_messages.pop(output_id, [])
        if not shown and pressed is not None:
            shown = [(pressed.chat_id, pressed.message_id)]
        for chat_id, message_id in shown:
            try:
                await self.bot.delete_message(chat_id, message_id)
            except TelegramError as error:  # too old to delete (48 h): leave it
                log.info("a message of output %s not deleted: %s", output_id, error)

    def _check_sendable(self, reply: replies.ImagesReady) -> None:
        """Every PNG of a result goes as a document: one over Telegram's limit for a bot's
        files cannot go at all (a photo of it can, but not its provenance)."""
        mb = 1024 * 1024
        for image in reply.images:
            if len(image.data) > self.max_send_bytes:
                raise Undeliverable(
                    f"{image.filename} is {len(image.data) / mb:.1f} MB, more than the "
                    f"{self.max_send_bytes / mb:.0f} MB Telegram lets a bot send"
                )

    async def _send_result(
        self, chat_id: int, in_group: bool, reply: replies.ImagesReady, sent: replies.SentParts
    ) -> None:
        """The status message, then each image; what a try before this one sent (``sent``)
        is not sent again, so a retry after a failure half-way sends only the rest."""
        done = await sent.sent()
        if "status" in done:
            status_message: int | None = int(done["status"]) if done["status"] else None
        else:
            status_message = await self.board.finish(
                reply.job_id, chat_id, reply.text, in_group=in_group
            )
            await sent.mark_sent("status", str(status_message or ""))
        for image in reply.images:
            if image_part(image.output_id) in done:
                continue
            await self._send_image(
                chat_id, image.output_id, image.filename, image.data, status_message
            )
            await sent.mark_sent(image_part(image.output_id))

    async def _send_image(
        self, chat_id: int, output_id: str, filename: str, data: bytes, reply_to: int | None
    ) -> None:
        """A photo to look at (Telegram re-compresses it, dropping the metadata) with the
        buttons, then the untouched PNG as a file, which keeps the provenance metadata.
        A PNG Telegram would not take as a photo is shown by a JPEG preview (photos.py);
        one it refuses as a photo anyway (IMAGE_PROCESS_FAILED) is shown by the file."""
        # Off the event loop: making a preview of a 2048² PNG takes about 0.4 s.
        preview = await asyncio.to_thread(photo_to_show, data)
        shown = preview is not None
        messages: list[tuple[int, int]] = []
        if preview is not None:
            photo_data = preview
            try:
                photo = await self.sender.call(
                    chat_id,
                    lambda: self.bot.send_photo(
                        chat_id,
                        photo_data,
                        caption=photo_caption(output_id),
                        reply_markup=output_keyboard(output_id),
                        reply_parameters=reply_parameters(reply_to),
                    ),
                    "send photo",
                )
            except BadRequest as error:
                # The file still goes, with the buttons, and so do the images after it.
                log.warning("output %s refused as a photo (%s); sent as a file", output_id, error)
                shown = False
            else:
                messages.append((chat_id, photo.message_id))
        document = await self.sender.call(
            chat_id,
            lambda: self.bot.send_document(
                chat_id,
                data,
                filename=filename,
                caption=document_caption(output_id),
                # No photo to carry the buttons: the file does.
                reply_markup=output_keyboard(output_id) if not shown else None,
                reply_parameters=reply_parameters(reply_to) if not shown else None,
                disable_content_type_detection=True,
            ),
            "send document",
        )
        messages.append((chat_id, document.message_id))
        self._output_messages[output_id] = messages
        while len(self._output_messages) > self._remember_outputs:
            self._output_messages.popitem(last=False)


def _job_of(notification: replies.Notification) -> str:
    """The job a notification is about, to name it in a log line (never its person)."""
    return str(getattr(notification.reply, "job_id", "?"))
