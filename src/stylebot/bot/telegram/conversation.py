"""Who is talking where, on Telegram: the core's Requester for a chat member, and the
conversation a reply goes to (a chat, its asker, the message answered)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from telegram import Chat, MaybeInaccessibleMessage, Message, ReplyParameters, User
from telegram.constants import ChatType

from stylebot.bot.core.admin_grammar import RepliedUser
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import Reply

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
        username=user.username,
    )


@dataclass(frozen=True)
class Conversation:
    """Where a reply goes: the chat, who asked, and the message to answer (if any)."""

    chat_id: int
    requester: Requester
    reply_to: int | None = None

    @classmethod
    def of(
        cls, message: MaybeInaccessibleMessage, user: User, *, answering: bool = True
    ) -> Conversation:
        """The conversation of ``message``, sent (or, for buttons, pressed) by ``user``."""
        return cls(
            message.chat.id,
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

    def private(self) -> Conversation:
        """The asker's private chat with the bot (its id is the user's id)."""
        requester = dataclasses.replace(
            self.requester, chat_id=self.requester.user_id, server_id=None
        )
        return Conversation(self.user_id, requester)

    def moved_to(self, chat_id: int) -> Conversation:
        """The same conversation in the supergroup a group became (a new chat id)."""
        requester = dataclasses.replace(
            self.requester,
            chat_id=str(chat_id),
            server_id=str(chat_id) if self.in_group else None,
        )
        return Conversation(chat_id, requester, None)


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    """Answer a message when there is one; if it was deleted meanwhile, send anyway."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


def text_of(reply: Reply) -> str:
    return getattr(reply, "text", "") or "Done."


def chat_in_logs(chat_id: int | str) -> str:
    """How a log line names a chat: a group by its id, a private chat not at all (its id
    is its member's Telegram user id, and log lines name jobs and records, not people)."""
    return str(chat_id) if str(chat_id).startswith(("-", "@")) else "a private chat"


def replied_message(message: Message) -> Message | None:
    """The message ``message`` answers. In a forum topic Telegram sets the topic's first
    (service) message as ``reply_to_message`` of every message that answers nothing:
    that is no reply, and taking it for one would act on the topic's creator."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


def replied_user(message: Message) -> RepliedUser | None:
    """The sender of the message ``message`` answers (``/admin ban`` as a reply)."""
    replied = replied_message(message)
    if replied is None or replied.from_user is None:
        return None
    is_bot = replied.from_user.is_bot or replied.sender_chat is not None
    return RepliedUser(replied.from_user.id, is_bot=is_bot)
