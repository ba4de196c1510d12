"""Parse `/command args` text, for the platforms where commands are typed (console, Telegram).

`/imagine a lighthouse at dawn style:mystyle seed:7 negative:blurry, dark`
becomes a prompt and options (`ImagineArgs.command` makes the core's Imagine). An
option is a `key:value` word with a known key; the value of `negative:` runs on to the
next option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester

IMAGINE_OPTIONS = (
    "style",
    "negative",
    "seed",
    "steps",
    "count",
    "size",
    "width",
    "height",
    "aspect",
)
_OPTION = re.compile(r"^(" + "|".join(IMAGINE_OPTIONS) + r"):(.*)$", re.IGNORECASE)


class CommandSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class TextCommand:
    name: str
    args: str


@dataclass(frozen=True)
class ImagineArgs:
    prompt: str
    style: str | None = None
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None
    count: int = 1
    width: int | None = None
    height: int | None = None
    aspect: str | None = None
    unknown: tuple[str, ...] = field(default=())

    def command(self, requester: Requester) -> Imagine:
        """The core's command for these arguments (the core checks the values)."""
        return Imagine(
            requester,
            self.prompt,
            style=self.style,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            steps=self.steps,
            width=self.width,
            height=self.height,
            count=self.count,
            aspect=self.aspect,
        )


def split_command(text: str, bot_username: str | None = None) -> TextCommand | None:
    """`/train@mybot foo` -> TextCommand("train", "foo"); None when not a command.

    The `@bot` suffix is what Telegram adds in groups; a command addressed to
    another bot is not ours.
    """
    text = text.strip()
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name, _, target = head.partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    return TextCommand(name.lower(), rest.strip())


def parse_confirmation(args: str, command: str) -> bool:
    """`/forgetme` asks, `/forgetme confirm` does it; anything else is refused rather than
    guessed, since the confirmed form cannot be undone."""
    word = args.strip().lower()
    if not word:
        return False
    if word == "confirm":
        return True
    raise CommandSyntaxError(
        f"{command} takes nothing, or the word confirm: {command} confirm. Nothing was changed."
    )


def parse_imagine(args: str) -> ImagineArgs:
    prompt_words: list[str] = []
    options: dict[str, str] = {}
    current: str | None = None
    for word in args.split():
        match = _OPTION.match(word)
        if match:
            current = match.group(1).lower()
            options[current] = match.group(2)
        elif current == "negative":
            options["negative"] = f"{options['negative']} {word}".strip()
        else:
            current = None
            prompt_words.append(word)

    width = _int_option(options, "width")
    height = _int_option(options, "height")
    if "size" in options:
        size = options["size"].lower()
        w, sep, h = size.partition("x")
        if not sep:
            w = h = size
        try:
            width, height = int(w), int(h)
        except ValueError as exc:
            raise CommandSyntaxError(
                f"size:{options['size']} is not a size; write it like size:512 or size:640x512"
            ) from exc
    return ImagineArgs(
        prompt=" ".join(prompt_words),
        style=options.get("style") or None,
        negative_prompt=options.get("negative", ""),
        seed=_int_option(options, "seed"),
        steps=_int_option(options, "steps"),
        count=_int_option(options, "count") or 1,
        width=width,
        height=height,
        aspect=options.get("aspect", "").lower() or None,
    )


def _int_option(options: dict[str, str], key: str) -> int | None:
    if key not in options or options[key] == "":
        return None
    try:
        return int(options[key])
    except ValueError as exc:
        raise CommandSyntaxError(f"{key}:{options[key]} should be a whole number") from exc
