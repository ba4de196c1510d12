"""Images sent to the bot on Telegram: reference images for a style, images to /verify,
pictures to /restyle, and artists' own images to /optout, as captions or as replies say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from telegram import Message

from stylebot.bot.core.commands import IncomingFile, OptOut, TrainStyle, UploadImages, Verify
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.grammar import RestyleArgs, TextCommand, parse, parse_restyle
from stylebot.bot.core.platform_core import PlatformCore
from stylebot.bot.core.replies import ConsentRequest, ErrorReply, VerifyReport, VerifyVerdict
from stylebot.bot.telegram.chat import ChatOutput
from stylebot.bot.telegram.consent import ConsentFlow
from stylebot.bot.telegram.conversation import Conversation, replied_message
from stylebot.bot.telegram.files import Downloads, UploadRefused

MASK_AS_ALBUM = (
    "To repaint by a mask, send the picture and then its mask together, as an album "
    "(white in the mask is drawn anew), captioned /repaint style:NAME PROMPT."
)


def image_caption(message: Message) -> str | None:
    """What a photo's or file's caption says about the image: its text, unless it is a
    command (``/train NAME`` names the style, it does not describe the picture)."""
    text = message.caption
    if text is None or text.lstrip().startswith("/"):
        return None
    return text


class ImageFlows:
    def __init__(
        self, core: PlatformCore, chat: ChatOutput, consent: ConsentFlow, files: Downloads
    ) -> None:
        self.core = core
        self.chat = chat
        self.consent = consent
        self.files = files

    async def _download(
        self, conversation: Conversation, messages: Sequence[Message]
    ) -> tuple[IncomingFile, ...] | None:
        """The messages' files; None (after saying why) when one is refused."""
        try:
            return tuple([await self.files.download(message) for message in messages])
        except UploadRefused as refused:
            await self.chat.show(conversation, ErrorReply(str(refused)))
            return None

    async def opt_out(self, conversation: Conversation, messages: Sequence[Message]) -> None:
        """Register the images of these messages (the sender's own) as the artist's."""
        files = await self._download(conversation, messages)
        if files is None:
            return
        await self.chat.show(
            conversation, await self.core.handle(OptOut(conversation.requester, files))
        )

    async def upload(
        self, conversation: Conversation, messages: Sequence[Message], caption: TextCommand | None
    ) -> None:
        """Reference images; a ``/train NAME`` caption names the style they are for."""
        try:
            named = parse(caption, conversation.requester) if caption and caption.args else None
        except CommandSyntaxError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        training = named if isinstance(named, TrainStyle) else None
        files = await self._download(conversation, messages)
        if files is None:
            return
        captioned = tuple(
            dataclasses.replace(file, caption=image_caption(message))
            for file, message in zip(files, messages, strict=True)
        )
        reply = await self.core.handle(UploadImages(conversation.requester, captioned))
        if not isinstance(reply, ConsentRequest):
            await self.chat.show(conversation, reply)
            return
        if training is not None and training.name:
            self.consent.name_style(conversation, training)
        from_photos = any(message.photo for message in messages)
        await self.consent.ask(conversation, reply, from_photos=from_photos)

    async def _replied_image(
        self, conversation: Conversation, message: Message, refusal: str
    ) -> Message | None:
        """The message with an image that ``message`` replies to; None (after saying
        ``refusal``) when it replies to none."""
        replied = replied_message(message)
        if replied is None or not (replied.photo or replied.document):
            await self.chat.show(conversation, ErrorReply(refusal))
            return None
        return replied

    async def verify_reply(self, conversation: Conversation, message: Message) -> None:
        """``/verify`` typed as a reply to an image."""
        replied = await self._replied_image(
            conversation,
            message,
            "Reply /verify to an image (best the PNG file I sent), or send the image with "
            "/verify as its caption.",
        )
        if replied is not None:
            await self.verify(conversation, replied)

    async def optout_reply(self, conversation: Conversation, message: Message) -> None:
        """``/optout`` typed as a reply to one's own message with an image."""
        replied = await self._replied_image(
            conversation,
            message,
            "Send images you made with /optout as their caption, or reply /optout to your "
            "own message with an image. Nothing was registered.",
        )
        if replied is None:
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
        await self.opt_out(conversation, [replied])

    async def restyle(
        self, conversation: Conversation, message: Message, caption: TextCommand
    ) -> None:
        """A picture captioned ``/restyle style:NAME [strength:N] [PROMPT]``."""
        try:
            parsed = parse(caption, conversation.requester)
        except CommandSyntaxError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        assert isinstance(parsed, RestyleArgs)
        if parsed.mask_path is not None:  # a console path means nothing here
            await self.chat.show(conversation, ErrorReply(MASK_AS_ALBUM))
            return
        files = await self._download(conversation, [message])
        if files is None:
            return
        command = parsed.command(conversation.requester, files[0], parsed.words)
        reply = await self.core.handle(command)
        typed = f"/{caption.name} {caption.args}".strip()
        await self.chat.show(conversation, reply, command=typed)

    async def repaint_with_mask(
        self, conversation: Conversation, messages: Sequence[Message], caption: TextCommand
    ) -> None:
        """An album of two captioned ``/repaint style:NAME PROMPT``: the picture, then its
        mask (white is drawn anew)."""
        try:
            parsed = parse_restyle(caption.args, "repaint", mask_attached=True)
        except CommandSyntaxError as error:
            await self.chat.show(conversation, ErrorReply(str(error)))
            return
        if parsed.region is not None:  # a region typed: two pictures, each repainted so
            for message in messages:
                await self.restyle(conversation, message, caption)
            return
        files = await self._download(conversation, messages)
        if files is None:
            return
        picture, mask = files
        reply = await self.core.handle(
            parsed.command(conversation.requester, picture, parsed.words, mask)
        )
        await self.chat.show(conversation, reply, command=f"/repaint {caption.args}".strip())

    async def restyle_reply(
        self, conversation: Conversation, message: Message, caption: TextCommand
    ) -> None:
        """``/restyle style:NAME`` typed as a reply to a picture."""
        replied = await self._replied_image(
            conversation,
            message,
            f"Send the picture with /{caption.name} style:NAME as its caption, or reply "
            f"/{caption.name} style:NAME to a picture.",
        )
        if replied is not None:
            await self.restyle(conversation, replied, caption)

    async def verify(self, conversation: Conversation, message: Message) -> None:
        files = await self._download(conversation, [message])
        if files is None:
            return
        reply = await self.core.handle(Verify(conversation.requester, files[0]))
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
