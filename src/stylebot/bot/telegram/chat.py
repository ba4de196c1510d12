"""Putting the core's replies into a Telegram chat.

:class:`ChatOutput` is the one place that posts: texts, files, job status messages and
results, each through the flood-aware sender. Texts go without ``parse_mode``, so
user-given prompts and names never break on markup.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    User,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError

from stylebot.bot.core import (
    ConsentRequest,
    ErrorReply,
    FileReply,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    Notification,
    Reply,
    Requester,
    StyleChoices,
    TextReply,
    VerifyReport,
)
from stylebot.bot.core.replies import ErasureConfirmation
from stylebot.bot.telegram.delivery import FloodAwareSender, JobStatusBoard, PrivatePreviews
from stylebot.bot.telegram.render import (
    MAX_ALERT_CHARS,
    MAX_CAPTION_CHARS,
    consent_keyboard,
    consent_text,
    document_caption,
    fit,
    output_keyboard,
    photo_caption,
    progress_text,
    style_choices_text,
)

log = logging.getLogger(__name__)

PLATFORM = "telegram"
GROUP_CHAT_TYPES = (ChatType.GROUP, ChatType.SUPERGROUP)

UserChat = tuple[int, int]  # (chat id, user id)


def requester_for(user: User, chat: Chat) -> Requester:
    """The core's view of who is asking: in a group, the group is the sharing scope."""
    in_group = chat.type in GROUP_CHAT_TYPES
    return Requester(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=user.full_name or user.username or str(user.id),
        chat_id=str(chat.id),
        server_id=str(chat.id) if in_group else None,
    )


@dataclass(frozen=True)
class Conversation:
    """Where a reply goes: the chat, who asked, and the message to answer (if any)."""

    chat_id: int
    requester: Requester
    reply_to: int | None = None

    @classmethod
    def of(cls, message: Message, user: User, *, answering: bool = True) -> Conversation:
        """The conversation of ``message``, sent (or, for buttons, pressed) by ``user``."""
        return cls(
            message.chat_id,
            requester_for(user, message.chat),
            message.message_id if answering else None,
        )

    @property
    def in_group(self) -> bool:
        return self.requester.server_id is not None

    @property
    def user_id(self) -> int:
        return int(self.requester.user_id)

    @property
    def key(self) -> UserChat:
        return (self.chat_id, self.user_id)

    def answering(self, message_id: int | None) -> Conversation:
        return Conversation(self.chat_id, self.requester, message_id)


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    """Answer a message when there is one; if it was deleted meanwhile, send anyway."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def text_of(reply: Reply) -> str:
    return getattr(reply, "text", "") or "Done."


class ChatOutput:
    """Renders replies into chats and delivers job notifications."""

    def __init__(
        self,
        bot: Bot,
        sender: FloodAwareSender,
        board: JobStatusBoard,
        *,
        remember_outputs: int = 1000,
    ) -> None:
        self.bot = bot
        self.sender = sender
        self.board = board
        self.previews = PrivatePreviews(bot, sender)
        # output id -> the (chat, message) pairs showing it, to remove them on delete.
        self._output_messages: OrderedDict[str, list[tuple[int, int]]] = OrderedDict()
        self._remember_outputs = remember_outputs

    async def deliver(self, notification: Notification) -> None:
        """Show a job's progress or result where the job was asked for.

        Raises when Telegram could not be reached (DeliveryFailed), so the front end keeps
        the event and delivers it again later. A chat that refuses for good (the bot was
        removed or blocked) is logged and skipped: retrying cannot help.
        """
        to = notification.to
        try:
            await self.show(Conversation(int(to.chat_id), to), notification.reply)
        except TelegramError as error:
            log.error(
                "job update for chat %s refused by Telegram (%s); the user sees it in /status",
                to.chat_id,
                error,
            )

    async def show(self, conversation: Conversation, reply: Reply) -> None:
        chat_id, in_group = conversation.chat_id, conversation.in_group
        match reply:
            case ErrorReply(text=text):
                await self.send_text(conversation, f"⚠️ {text}")
            case ConsentRequest():  # uploads ask through ConsentFlow; this is the plain form
                await self.send_text(
                    conversation,
                    consent_text(reply, from_photos=False, style_name=None),
                    keyboard=consent_keyboard(conversation.user_id, reply.licences),
                )
            case JobQueued():
                await self.board.open(
                    reply.job_id,
                    chat_id,
                    reply.text,
                    in_group=in_group,
                    reply_to=conversation.reply_to,
                )
            case JobProgress():
                self.board.progress(reply.job_id, chat_id, progress_text(reply), in_group=in_group)
            case JobFinished():
                text = reply.text if reply.ok else f"⚠️ {reply.text}"
                await self.board.finish(reply.job_id, chat_id, text, in_group=in_group)
            case ImagesReady(preview_of=str(training_job_id)):
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
            case ImagesReady():
                status_message = await self.board.finish(
                    reply.job_id, chat_id, reply.text, in_group=in_group
                )
                for image in reply.images:
                    await self._send_image(
                        chat_id, image.output_id, image.filename, image.data, status_message
                    )
            case FileReply():
                await self.sender.call(
                    chat_id,
                    lambda: self.bot.send_document(
                        chat_id,
                        reply.data,
                        filename=reply.filename,
                        caption=fit(reply.text, MAX_CAPTION_CHARS),
                        reply_parameters=reply_parameters(conversation.reply_to),
                    ),
                    "send file",
                )
            case StyleChoices():
                await self.send_text(conversation, style_choices_text(reply))
            # /forgetme shows its question with buttons itself (handlers); this is the text.
            case TextReply(text=text) | VerifyReport(text=text) | ErasureConfirmation(text=text):
                await self.send_text(conversation, text)

    async def send_text(
        self,
        conversation: Conversation,
        text: str,
        *,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> Message:
        chat_id = conversation.chat_id
        return await self.sender.call(
            chat_id,
            lambda: self.bot.send_message(
                chat_id,
                fit(text),
                reply_markup=keyboard,
                reply_parameters=reply_parameters(conversation.reply_to),
            ),
            "send message",
        )

    async def close_question(self, message: Message, outcome: str) -> None:
        """Append the outcome to a question and drop its buttons, so nobody presses again."""
        text = fit(f"{message.text or ''}\n\n{outcome}")
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
        try:
            await query.answer(fit(text, MAX_ALERT_CHARS) if text else None, show_alert=alert)
        except TelegramError as error:
            log.info("callback query %s not answered: %s", query.id, error)

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
                log.info("output message %s in %s not deleted: %s", message_id, chat_id, error)

    async def _send_image(
        self, chat_id: int, output_id: str, filename: str, data: bytes, reply_to: int | None
    ) -> None:
        """A photo to look at (Telegram re-compresses it, dropping the metadata) with the
        buttons, then the untouched PNG as a file, which keeps the provenance metadata."""
        photo = await self.sender.call(
            chat_id,
            lambda: self.bot.send_photo(
                chat_id,
                data,
                caption=photo_caption(output_id),
                reply_markup=output_keyboard(output_id),
                reply_parameters=reply_parameters(reply_to),
            ),
            "send photo",
        )
        document = await self.sender.call(
            chat_id,
            lambda: self.bot.send_document(
                chat_id,
                data,
                filename=filename,
                caption=document_caption(output_id),
                disable_content_type_detection=True,
            ),
            "send document",
        )
        self._output_messages[output_id] = [
            (chat_id, photo.message_id),
            (chat_id, document.message_id),
        ]
        while len(self._output_messages) > self._remember_outputs:
            self._output_messages.popitem(last=False)
