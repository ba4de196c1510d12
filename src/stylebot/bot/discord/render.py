"""How the core's replies look on Discord: message content, embeds and files.

Pure functions on reply data, no I/O: the adapter decides where a rendered
message goes (an interaction response, a channel, a DM); this module decides
what it says. Views (buttons, selects) are attached by the caller, because
they need to know who asked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import discord

from stylebot.bot.core import (
    ConsentRequest,
    ErrorReply,
    FileReply,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    Reply,
    StyleChoices,
    TextReply,
    VerifyReport,
)
from stylebot.bot.core.replies import ErasureConfirmation

#: Discord refuses message content longer than this.
CONTENT_LIMIT = 2000
#: ... and embed descriptions longer than this.
EMBED_DESCRIPTION_LIMIT = 4096

CONSENT_COLOUR = discord.Colour.blurple()
ERROR_PREFIX = "\N{WARNING SIGN}\N{VARIATION SELECTOR-16} "
PROGRESS_BAR_CELLS = 10


@dataclass(frozen=True)
class Attachment:
    """A file to upload. Kept as bytes because a discord.File can be sent only once,
    and a result may need a second try in another place (channel, then DM)."""

    filename: str
    data: bytes

    def to_file(self) -> discord.File:
        return discord.File(io.BytesIO(self.data), filename=self.filename)


@dataclass(frozen=True)
class Rendered:
    """A message ready to send: content, optional embed, files."""

    content: str
    embed: discord.Embed | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)

    def files(self) -> list[discord.File]:
        """Fresh file objects for one send."""
        return [a.to_file() for a in self.attachments]


def fit(text: str, limit: int = CONTENT_LIMIT) -> str:
    """Shorten text to Discord's limit, saying that it was shortened."""
    if len(text) <= limit:
        return text
    marker = "\n… (shortened)"
    return text[: limit - len(marker)] + marker


def progress_bar(step: int, total: int) -> str:
    """A text bar like ▰▰▰▱▱▱▱▱▱▱ (works in every client, no images needed)."""
    if total <= 0:
        return ""
    filled = max(0, min(PROGRESS_BAR_CELLS, round(PROGRESS_BAR_CELLS * step / total)))
    return "▰" * filled + "▱" * (PROGRESS_BAR_CELLS - filled)


def render(reply: Reply) -> Rendered:
    """The Discord message for a reply (without its buttons)."""
    match reply:
        case ErrorReply(text=text):
            return Rendered(fit(ERROR_PREFIX + text))
        case ConsentRequest():
            return Rendered(fit(reply.text), embed=consent_embed(reply))
        case JobProgress():
            bar = progress_bar(reply.step, reply.total)
            return Rendered(fit(f"{reply.text}\n{bar}" if bar else reply.text))
        case ImagesReady():
            files = tuple(Attachment(image.filename, image.data) for image in reply.images)
            return Rendered(fit(reply.text), attachments=files)
        case FileReply():
            return Rendered(fit(reply.text), attachments=(Attachment(reply.filename, reply.data),))
        case StyleChoices(names=names):
            return Rendered(fit(", ".join(names) or "No styles."))
        case TextReply() | JobQueued() | JobFinished() | VerifyReport() | ErasureConfirmation():
            return Rendered(fit(reply.text))
    raise TypeError(f"no Discord rendering for {reply!r}")


def consent_embed(reply: ConsentRequest) -> discord.Embed:
    """The terms the user agrees to, shown in full before any training."""
    embed = discord.Embed(
        title="Before training: your rights to these images",
        description=fit(reply.terms, EMBED_DESCRIPTION_LIMIT),
        colour=CONSENT_COLOUR,
    )
    embed.add_field(name="Images waiting", value=str(reply.image_count))
    embed.add_field(
        name="Licences", value="\n".join(f"• {lic.label}" for lic in reply.licences) or "-"
    )
    embed.set_footer(text=f"Terms version {reply.terms_version}")
    return embed


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
