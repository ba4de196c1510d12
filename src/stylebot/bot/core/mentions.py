"""Commands named in replies, spelled by each platform.

The core's texts never spell a command: they say which one (:func:`mention`, "the train
command with NAME"), and each platform spells it its own way when it shows the reply
(stylebot.bot.core.platform_core): Telegram and the console as typed (``/train NAME``), Discord as
its slash commands have it (``/train name:NAME``), or with what it has instead (Discord
asks for consent with a question under ``/train``, not with a command). So no platform
tells its users to type a command it does not have.

A mention is kept inside the text as a marked span; :func:`spell` replaces every one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CommandName(StrEnum):
    """Every command a reply may point the user to (its typed name)."""

    UPLOAD = "upload"
    CONSENT = "consent"
    CAPTIONS = "captions"
    DISCARD = "discard"
    TRAIN = "train"
    IMAGINE = "imagine"
    RESTYLE = "restyle"
    EXTEND = "extend"
    REPAINT = "repaint"
    SKETCH = "sketch"
    STYLES = "styles"
    STATUS = "status"
    CANCEL = "cancel"
    VERIFY = "verify"
    OPTOUT = "optout"
    FORGET_ME = "forgetme"


@dataclass(frozen=True)
class Mention:
    """A command as a reply names it: positional words as typed ("NAME", a prompt) and
    ``key:value`` options."""

    command: CommandName
    args: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()


#: How a platform writes a mention.
Spelling = Callable[[Mention], str]

_MARKED = re.compile("\u27e6([^\u27e7]*)\u27e7")  # ⟦...⟧; json escapes non-ASCII inside


def mention(command: CommandName, *args: str, **options: str) -> str:
    """The command, marked in a text for each platform to spell (see :func:`spell`)."""
    data = [str(command), list(args), list(options.items())]
    return f"\u27e6{json.dumps(data)}\u27e7"


def mentions_in(text: str) -> list[Mention]:
    """The mentions in a core text, decoded (what a platform would spell)."""
    return [_decode(match.group(1)) for match in _MARKED.finditer(text)]


def spell(text: str, spelling: Spelling) -> str:
    """``text`` with every mention written the platform's way."""
    return _MARKED.sub(lambda match: spelling(_decode(match.group(1))), text)


def typed(mention: Mention) -> str:
    """The spelling of the typed platforms (console, Telegram): ``/imagine a cat style:ink``."""
    words = [f"/{mention.command}", *mention.args]
    words.extend(f"{key}:{value}" for key, value in mention.options)
    return " ".join(words)


def _decode(data: str) -> Mention:
    command, args, options = json.loads(data)
    return Mention(CommandName(command), tuple(args), tuple((k, v) for k, v in options))
