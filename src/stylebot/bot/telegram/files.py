"""Getting the images users send from Telegram: a photo's largest size or a document,
refused before any download when Telegram says it is too large."""

from __future__ import annotations

from telegram import Bot, Message
from telegram.error import BadRequest

from stylebot.bot.core.commands import IncomingFile
from stylebot.bot.telegram.delivery import FloodAwareSender


class UploadRefused(Exception):
    """A file we will not download; the message says why, for the user."""


class Downloads:
    def __init__(self, bot: Bot, sender: FloodAwareSender, max_upload_bytes: int) -> None:
        self.bot = bot
        self.sender = sender
        self.max_upload_bytes = max_upload_bytes

    async def download(self, message: Message) -> IncomingFile:
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
