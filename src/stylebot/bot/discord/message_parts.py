"""The messages one Discord delivery takes: Discord's limits on a message, and a
result cut into messages within them (stylebot.bot.discord.delivery sends them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from stylebot.bot.core.delivery import Undeliverable
from stylebot.bot.core.replies import ImagesReady
from stylebot.bot.discord.render import Attachment, Rendered, megabytes
from stylebot.bot.discord.views import result_view

#: The files of one message together, for a bot in a server without boosts (boosted
#: servers take more; the conservative limit holds everywhere, DMs included). From
#: https://discord.com/developers/docs/reference#uploading-files: "the default file
#: upload limit is 10 MiB"; over it Discord answers 413 / 40005 Request entity too large.
MAX_MESSAGE_FILE_BYTES = 10 * 1024 * 1024
#: Files one message may carry (the same page: up to 10 attachments a message).
MAX_MESSAGE_FILES = 10
#: Images with buttons in one message: a row of buttons per image, five rows a message.
MAX_IMAGES_WITH_BUTTONS = 5


@dataclass(frozen=True)
class Part:
    """One message of a delivery: its text (may be empty), embed, files, and the
    images whose buttons it carries (numbered from ``first_number``)."""

    content: str
    embed: discord.Embed | None
    attachments: tuple[Attachment, ...]
    output_ids: tuple[str, ...]
    first_number: int

    def files(self) -> list[discord.File]:
        return [a.to_file() for a in self.attachments]

    def view(self, with_buttons: bool) -> discord.ui.View | None:
        if not with_buttons:
            return None
        return result_view(self.output_ids, first_number=self.first_number)

    def send_kwargs(self, with_buttons: bool) -> dict[str, Any]:
        """Keywords for Messageable.send / Webhook.send (they take no None for these)."""
        kwargs: dict[str, Any] = {"files": self.files()}
        if self.embed is not None:
            kwargs["embed"] = self.embed
        view = self.view(with_buttons)
        if view is not None:
            kwargs["view"] = view
        return kwargs


def file_batches(
    attachments: Sequence[Attachment], *, max_files: int = MAX_MESSAGE_FILES
) -> list[tuple[Attachment, ...]]:
    """The files in order, as few messages' worth as Discord's limits allow.

    Raises Undeliverable for a file that no message can carry."""
    batches: list[tuple[Attachment, ...]] = []
    batch: list[Attachment] = []
    size = 0
    for attachment in attachments:
        if len(attachment.data) > MAX_MESSAGE_FILE_BYTES:
            raise Undeliverable(
                f"{attachment.filename} is {megabytes(len(attachment.data))}, more than the "
                f"{megabytes(MAX_MESSAGE_FILE_BYTES)} Discord lets a bot attach to a message"
            )
        full = len(batch) == max_files or size + len(attachment.data) > MAX_MESSAGE_FILE_BYTES
        if batch and full:
            batches.append(tuple(batch))
            batch, size = [], 0
        batch.append(attachment)
        size += len(attachment.data)
    if batch:
        batches.append(tuple(batch))
    return batches


def parts(
    rendered: Rendered,
    output_ids: Mapping[str, str] | None = None,
    *,
    prefix: str = "",
) -> list[Part]:
    """``rendered`` as the messages Discord takes: text pages and file batches side by
    side, the embed on the first. ``output_ids`` maps a result's file names to the
    images they are (those files get buttons: at most five images a message)."""
    known = output_ids or {}
    max_files = MAX_IMAGES_WITH_BUTTONS if known else MAX_MESSAGE_FILES
    batches = file_batches(rendered.attachments, max_files=max_files)
    pages = rendered.pages(prefix=prefix)
    made: list[Part] = []
    number = 1
    for n in range(max(len(pages), len(batches))):
        files = batches[n] if n < len(batches) else ()
        ids = tuple(known[f.filename] for f in files if f.filename in known)
        made.append(
            Part(
                content=pages[n] if n < len(pages) else "",
                embed=rendered.embed if n == 0 else None,
                attachments=files,
                output_ids=ids,
                first_number=number,
            )
        )
        number += len(ids)
    return made


def result_ids(reply: object) -> dict[str, str]:
    """A result's file names and the output ids they show (none for other replies)."""
    if isinstance(reply, ImagesReady) and reply.preview_of is None:
        return {image.filename: image.output_id for image in reply.images}
    return {}
