"""Presses on the bot's inline buttons: under results, and on its questions.

The consent question's buttons are the consent flow's (consent.py); the rest land here.
Each press goes to the core as the presser; who may do what is the core's decision, but
a question (delete a style, erase everything) is answered by its asker only.
"""

from __future__ import annotations

import contextlib
import logging

from telegram import CallbackQuery, Message, Update
from telegram.ext import ContextTypes

from stylebot.bot.core.commands import (
    DeleteOutput,
    DeleteStyle,
    EraseMyData,
    ExtendOutput,
    OutputInfo,
    RerollOutput,
    UpscaleOutput,
    VaryOutput,
)
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.replies import ErrorReply
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.consent import ConsentFlow
from stylebot.bot.telegram.conversation import Conversation, text_of
from stylebot.bot.telegram.render import (
    MAX_ALERT_CHARS,
    SORRY,
    ConsentAction,
    EraseAction,
    OutputAction,
    StyleDeleteAction,
    fit,
    parse_callback,
)

log = logging.getLogger(__name__)


class Buttons:
    """``on_button``, the PTB callback for every inline button press."""

    def __init__(self, core: PlatformCore, chat: ChatOutput, consent: ConsentFlow) -> None:
        self.core = core
        self.chat = chat
        self.consent = consent
        # /forgetme questions whose Erase is being handled, so a double press counts once.
        self._erasing: set[tuple[int, int]] = set()

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
            case "upscale":
                reply = await self.core.handle(UpscaleOutput(me, action.output_id))
            case "zoom1.5" | "zoom2" | "square" | "portrait":
                reply = await self.core.handle(ExtendOutput(me, action.output_id, action.verb))
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

    async def _askers_question(
        self, query: CallbackQuery, asker: int, expired: str
    ) -> Message | None:
        """The question pressed, when its asker pressed it and it is still there; None
        (after answering the press) otherwise."""
        message = query.message
        if query.from_user.id != asker:
            await self.chat.answer(query, "Only the person who asked can answer this.", alert=True)
            return None
        if not isinstance(message, Message):
            await self.chat.answer(query, expired)
            return None
        await self.chat.answer(query)
        return message

    async def _style_delete_button(self, query: CallbackQuery, action: StyleDeleteAction) -> None:
        message = await self._askers_question(
            query, action.user_id, "This question expired; ask again."
        )
        if message is None:
            return
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
        message = await self._askers_question(
            query, action.user_id, "This question expired; send /forgetme again."
        )
        if message is None:
            return
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
