"""The consent question on Telegram: terms, licence buttons, Confirm and Cancel.

The core decides what consent means and records it; this module is the conversation
around it. The buttons carry the asking user's id, so only they can answer (anyone else
gets an alert and nothing changes). Besides the licence the question asks whether
recognisable people appear in the images and, if so, whether each of them agreed; Confirm
needs both answers, and the core refuses people who did not agree. Nothing is queued
before Confirm: Confirm records consent and, when the style already has a name
(``/train NAME`` as the caption, or typed while the question was open), starts training;
Cancel discards the waiting images.
"""

from __future__ import annotations

import dataclasses

from telegram import CallbackQuery, Message
from telegram.error import BadRequest

from stylebot.bot.core.commands import ConfirmConsent, DiscardUploads, TrainStyle
from stylebot.bot.core.consent import LICENCES, find_licence, people_answer
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, Reply, TrainingRefused
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.conversation import Conversation, UserChat, text_of
from stylebot.bot.telegram.delivery import is_not_modified
from stylebot.bot.telegram.render import (
    ConsentAction,
    consent_keyboard,
    consent_text,
)

NOT_YOURS = "Only the person who sent these images can answer this."
ANSWER_BOTH = "Pick a licence and say whether recognisable people appear first."


class ConsentFlow:
    """Open consent questions and the trainings (name, variant) waiting for them, per
    user and chat."""

    def __init__(self, core: PlatformCore, chat: ChatOutput) -> None:
        self.core = core
        self.chat = chat
        # `/train NAME [variant:KIND]` given with an upload (caption) or while its
        # question is open: trained once the user confirms.
        self._trainings: dict[UserChat, TrainStyle] = {}
        # The consent question waiting for each user in each chat (its message id).
        self._open: dict[UserChat, int] = {}
        # Questions whose Confirm is being handled, so a double press counts once.
        self._confirming: set[tuple[int, int]] = set()

    def is_open(self, conversation: Conversation) -> bool:
        return conversation.key in self._open

    def style_name(self, conversation: Conversation) -> str | None:
        training = self._trainings.get(conversation.key)
        return training.name if training is not None else None

    def name_style(self, conversation: Conversation, training: TrainStyle) -> None:
        """Train this (its name and variant) once the user confirms."""
        self._trainings[conversation.key] = training

    def forget(self, conversation: Conversation) -> None:
        self._open.pop(conversation.key, None)
        self._trainings.pop(conversation.key, None)

    def forget_user(self, user_id: int) -> None:
        """Forget the user's questions and names in every chat (after /forgetme)."""
        for key in [key for key in self._open if key[1] == user_id]:
            del self._open[key]
        for key in [key for key in self._trainings if key[1] == user_id]:
            del self._trainings[key]

    async def ask(
        self, conversation: Conversation, request: ConsentRequest, *, from_photos: bool
    ) -> None:
        """Post the question; an older open one for the same user loses its buttons, as
        one answer covers every waiting image."""
        text = consent_text(
            request, from_photos=from_photos, style_name=self.style_name(conversation)
        )
        keyboard = consent_keyboard(conversation.user_id, request.licences)
        sent = await self.chat.send_text(conversation, text, keyboard=keyboard)
        previous = self._open.get(conversation.key)
        self._open[conversation.key] = sent.message_id
        if previous is not None:
            await self.chat.drop_buttons(conversation.chat_id, previous)

    async def confirm_typed(self, conversation: Conversation, command: ConfirmConsent) -> None:
        """`/consent LICENCE`: typing it is the confirmation, as in the console."""
        reply = await self._confirm(conversation, command)
        await self.chat.show(conversation, reply)

    async def on_button(self, query: CallbackQuery, action: ConsentAction) -> None:
        message = query.message
        if query.from_user.id != action.user_id:
            await self.chat.answer(query, NOT_YOURS, alert=True)
            return
        if not isinstance(message, Message):  # too old for Telegram to show us
            await self.chat.answer(query, "This question expired. Send /consent for a new one.")
            return
        conversation = Conversation.of(message, query.from_user, answering=False)
        match action.step:
            case "licence" | "people":
                await self._choose(query, message, action)
            case "cancel":
                await self.chat.answer(query)
                reply = await self.core.handle(DiscardUploads(conversation.requester))
                self.forget(conversation)
                await self.chat.close_question(message, f"Cancelled. {text_of(reply)}")
            case "confirm":
                await self._confirm_pressed(query, message, conversation, action)

    async def _choose(self, query: CallbackQuery, message: Message, action: ConsentAction) -> None:
        """Tick the licence or people answer pressed; the keyboard carries both answers."""
        if action.step == "people":
            people = people_answer(action.people)
            await self.chat.answer(query, people.label if people else "?")
        else:
            licence = find_licence(action.licence)
            await self.chat.answer(query, f"Licence: {licence.label if licence else '?'}")
        keyboard = consent_keyboard(action.user_id, LICENCES, action.licence, action.people)
        try:
            await self.chat.sender.call(
                message.chat_id,
                lambda: self.chat.bot.edit_message_reply_markup(
                    message.chat_id, message.message_id, reply_markup=keyboard
                ),
                "choose answer",
            )
        except BadRequest as error:
            if not is_not_modified(error):  # the same answer pressed twice is fine
                raise

    async def _confirm_pressed(
        self,
        query: CallbackQuery,
        message: Message,
        conversation: Conversation,
        action: ConsentAction,
    ) -> None:
        licence = action.licence
        people = people_answer(action.people)
        if not licence or people is None:
            await self.chat.answer(query, ANSWER_BOTH, alert=True)
            return
        question = (message.chat_id, message.message_id)
        if question in self._confirming:
            await self.chat.answer(query)
            return
        self._confirming.add(question)
        try:
            await self.chat.answer(query, "Confirmed")
            command = ConfirmConsent.answered(conversation.requester, licence, people, None)
            reply = await self._confirm(conversation, command, pressed=message.message_id)
            if isinstance(reply, ErrorReply) and not isinstance(reply, TrainingRefused):
                self.forget(conversation)
                await self.chat.close_question(message, f"⚠️ {reply.text}")
                return
            chosen = find_licence(licence)
            label = chosen.label if chosen else licence
            await self.chat.close_question(
                message, f"✅ Confirmed by {query.from_user.full_name}: {label}; {people.label}."
            )
            await self.chat.show(conversation.answering(message.message_id), reply)
        finally:
            self._confirming.discard(question)

    async def _confirm(
        self, conversation: Conversation, command: ConfirmConsent, *, pressed: int | None = None
    ) -> Reply:
        """Record consent and train the style named for it, if one was (one core command);
        ``pressed`` is the question whose Confirm did it (if any)."""
        training = self._trainings.get(conversation.key)
        if training is not None:
            command = dataclasses.replace(
                command, train_as=training.name, train_variant=training.variant
            )
        reply = await self.core.handle(command)
        if isinstance(reply, ErrorReply) and not isinstance(reply, TrainingRefused):
            return reply  # nothing recorded: the name waits for the next try
        self._trainings.pop(conversation.key, None)
        question = self._open.pop(conversation.key, None)
        if question is not None and question != pressed:  # its buttons are stale now
            await self.chat.drop_buttons(conversation.chat_id, question)
        return reply
