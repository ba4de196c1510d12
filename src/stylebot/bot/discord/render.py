"""How the core's replies look on Discord: message content, embeds and files.

Pure functions on reply data, no I/O: the adapter decides where a rendered
message goes (an interaction response, a channel, a DM); this module decides
what it says. Views (buttons, selects) are attached by the caller, because
they need to know who asked.

The core's texts are plain text holding what users typed (prompts, style and
display names, file names), and Discord reads markdown: every text is escaped
whole, so ``[Free Nitro](https://…)`` in a prompt shows as typed, never as a
link in the bot's message. A text longer than a message is sent as several
(:meth:`Rendered.pages`), cut between lines.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import discord

from stylebot.bot.core.mentions import CommandName, Mention
from stylebot.bot.core.paging import pages
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErasureConfirmation,
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
    """A message ready to send: content (escaped, and possibly longer than one
    message: send :meth:`pages`), optional embed, files."""

    content: str
    embed: discord.Embed | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)

    def files(self) -> list[discord.File]:
        """Fresh file objects for one send."""
        return [a.to_file() for a in self.attachments]

    def pages(self, prefix: str = "") -> list[str]:
        """``prefix`` and the content as messages of at most CONTENT_LIMIT characters: the
        first carries the embed, files and buttons, the rest follow it."""
        return pages(prefix + self.content, CONTENT_LIMIT)

    @property
    def short(self) -> str:
        """The content as one message, shortened (and saying so) if it must be: for
        edits of a message that has no room for more, like progress lines."""
        return fit(self.content)


# Every character Discord's markdown gives a meaning anywhere in a line ("[" starts a
# masked link, "<" a mention, channel or timestamp), then those that count at the start
# of a line only (headings, "-#" subtext, quotes, lists). discord.utils.escape_markdown
# is not enough: it escapes a masked link by one backslash in front of the span from
# the line's first "[" to its last ")", and leaves everything inside that span live.
_INLINE_MARKUP = re.compile(r"([\\*_~|`\[\]<])")
_LINE_START_MARKUP = re.compile(r"^([ \t]*)([#>+-]|\d+(?=\.))", re.MULTILINE)


def escape(text: str) -> str:
    """``text`` with nothing in it Discord would render as markdown, a link or a mention:
    a backslash before each markup character, which Discord shows as the character."""
    text = _INLINE_MARKUP.sub(r"\\\1", text)
    return _LINE_START_MARKUP.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, markup = match.group(1), match.group(2)
    if markup.isdigit():  # "1. " starts a numbered list: escape its dot
        return f"{indent}{markup}\\"
    return f"{indent}\\{markup}"


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
            return Rendered(ERROR_PREFIX + escape(text))
        case ConsentRequest():
            return Rendered(escape(reply.text), embed=consent_embed(reply))
        case JobProgress():
            bar = progress_bar(reply.step, reply.total)
            return Rendered(escape(reply.text) + (f"\n{bar}" if bar else ""))
        case ImagesReady():
            files = tuple(Attachment(image.filename, image.data) for image in reply.images)
            return Rendered(escape(reply.text), attachments=files)
        case FileReply():
            attachment = Attachment(reply.filename, reply.data)
            return Rendered(escape(reply.text), attachments=(attachment,))
        case StyleChoices(names=names):
            return Rendered(escape(", ".join(names)) or "No styles.")
        case TextReply() | JobQueued() | JobFinished() | VerifyReport() | ErasureConfirmation():
            return Rendered(escape(reply.text))
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


#: Discord's slash command for each command a reply may name (commands.py registers them).
SLASH_COMMANDS: dict[CommandName, str] = {
    CommandName.TRAIN: "/train",
    CommandName.IMAGINE: "/imagine",
    CommandName.RESTYLE: "/restyle",
    CommandName.EXTEND: "/extend",
    CommandName.REPAINT: "/repaint",
    CommandName.SKETCH: "/sketch",
    CommandName.STYLES: "/styles",
    CommandName.STATUS: "/status",
    CommandName.CANCEL: "/cancel",
    CommandName.VERIFY: "/verify",
    CommandName.OPTOUT: "/optout",
    CommandName.FORGET_ME: "/forget-me",
}
#: What Discord has instead of the typed commands it lacks: /train takes the images and
#: asks the consent question under its answer.
INSTEAD_OF: dict[CommandName, str] = {
    CommandName.UPLOAD: "/train with the images attached",
    CommandName.CONSENT: "the licence question /train shows",
    CommandName.DISCARD: "Cancel on the licence question /train shows",
    CommandName.CAPTIONS: "/captions and its Edit captions button",
}
#: The option a command's first words fill on Discord (typed, they come unnamed).
_FIRST_OPTION = {
    CommandName.TRAIN: "name",
    CommandName.IMAGINE: "prompt",
    CommandName.SKETCH: "prompt",
}


#: /captions' typed forms (by their words, a number as NUMBER), as the buttons under
#: Discord's /captions listing. One suggestion is accepted by submitting the Edit
#: captions modal, which opens with the suggestions filled in.
CAPTION_BUTTONS = {
    ("auto",): "the Suggest captions button under /captions",
    ("accept",): "the Accept suggestions button under /captions",
    ("accept", "NUMBER"): "the Edit captions button under /captions (suggestions filled in)",
}


def discord_spelling(mention: Mention) -> str:
    """A command a reply names, as a Discord user finds it: ``/train name:NAME``."""
    if mention.command is CommandName.CAPTIONS and mention.args[:1] in (("auto",), ("accept",)):
        typed = tuple("NUMBER" if arg.isdecimal() else arg for arg in mention.args)
        return CAPTION_BUTTONS.get(typed, INSTEAD_OF[CommandName.CAPTIONS])
    if mention.command in INSTEAD_OF:
        return INSTEAD_OF[mention.command]
    words = [SLASH_COMMANDS[mention.command]]
    if mention.args:
        words.append(f"{_FIRST_OPTION[mention.command]}:{' '.join(mention.args)}")
    words.extend(f"{key}:{value}" for key, value in mention.options)
    return " ".join(words)


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
