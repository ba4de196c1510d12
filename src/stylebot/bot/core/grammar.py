"""The typed command language, one for every platform where commands are typed (console,
Telegram): a line in, the core's command out.

:func:`parse` turns ``/style share public ink`` into ``ShareStyle(..., "ink", public=True)``
on every typed platform alike; an adapter only supplies what its platform has (files,
the message replied to) for the few commands that need it (:class:`NeedsFiles`). Discord
has no typed commands: its slash commands' options map to the same command objects.

`/imagine a lighthouse at dawn style:mystyle seed:7 negative:blurry, dark`
becomes a prompt and options. An option is a `key:value` word with a known key; the value
of `negative:` runs on to the next option.

Over 400 lines on purpose: the whole typed language in one module, every command's words
and options, so that no adapter keeps a grammar of its own.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from stylebot.bot.core import commands
from stylebot.bot.core.admin_commands import AdminCommand
from stylebot.bot.core.admin_grammar import RepliedUser, parse_admin
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.model import Requester
from stylebot.bot.core.names import printable
from stylebot.queue.payloads import FOLLOW_KINDS

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


@dataclass(frozen=True)
class ShowHelp:
    """``/help`` (``/admin`` alone: the admin commands' help)."""

    admin: bool = False


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class ActAs:
    """``/as NAME``: the console acts as another user from here on."""

    name: str


@dataclass(frozen=True)
class NeedsFiles:
    """A command on images the platform supplies: the typed paths (console), or the
    message replied to or captioned (Telegram)."""

    verb: Literal["upload", "verify", "optout"]
    paths: tuple[str, ...] = ()
    # ``/upload a.png b.png caption:a city at night``: every image's caption.
    caption: str | None = None


@dataclass(frozen=True)
class AskConsent:
    """``/consent`` without a licence: ask the consent question again."""


@dataclass(frozen=True)
class RestyleArgs:
    """``/restyle [PATH] style:NAME [strength:0.6] [confirm:yes] [PROMPT]``: the picture
    comes from the platform (the console's first word is its path; Telegram's is the
    photo or file captioned so). ``words``: the words that are not options."""

    words: tuple[str, ...]
    style: str | None = None
    strength: float | None = None
    confirmed: bool = False
    # /extend's zoom or shape (EXTENSIONS' key) and /repaint's region in percent.
    extend: str | None = None
    region: tuple[float, float, float, float] | None = None
    # /repaint's ``mask:PATH``: the mask image's path (the console reads it).
    mask_path: str | None = None
    # /sketch's ``follow:edges|depth`` (edges when not given).
    follow: str | None = None

    def command(
        self,
        requester: Requester,
        file: commands.IncomingFile,
        prompt_words: Sequence[str],
        mask: commands.IncomingFile | None = None,
    ) -> commands.Restyle:
        return commands.Restyle(
            requester,
            file,
            self.style,
            prompt=" ".join(prompt_words),
            strength=self.strength,
            rights_confirmed=self.confirmed,
            extend=self.extend,
            region=self.region,
            mask=mask,
            follow=self.follow,
        )


Parsed = (
    commands.Command
    | AdminCommand
    | ShowHelp
    | Quit
    | ActAs
    | NeedsFiles
    | AskConsent
    | RestyleArgs
)

STYLE_USAGE = "Use /style info|share|unshare|delete|export NAME (share NAME public: with everyone)"
_STYLE_COMMANDS: dict[
    str,
    type[commands.StyleInfo | commands.UnshareStyle | commands.DeleteStyle | commands.ExportStyle],
] = {
    "info": commands.StyleInfo,
    "unshare": commands.UnshareStyle,
    "delete": commands.DeleteStyle,
    "export": commands.ExportStyle,
}
PUBLIC = "public"


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

    def command(self, requester: Requester) -> commands.Imagine:
        """The core's command for these arguments (the core checks the values)."""
        return commands.Imagine(
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


def parse(command: TextCommand, requester: Requester, replied: RepliedUser | None = None) -> Parsed:
    """What ``command`` asks for. ``replied``: the sender of the message it answers, where
    the platform has replies (``/admin ban`` as a reply)."""
    name, args, me = command.name, command.args, requester
    words = args.split()
    match name:
        case "help" | "start":
            return ShowHelp()
        case "quit" | "exit":
            return Quit()
        case "as":
            if not args:
                raise CommandSyntaxError("Name the user to act as: /as NAME")
            return ActAs(args)  # the console says which names it takes
        case "upload":
            paths, caption = _split_caption(args)
            return NeedsFiles(name, tuple(_paths(paths)), caption)
        case "verify" | "optout":
            return NeedsFiles(name, tuple(_paths(args)))
        case "captions":
            return _captions_command(me, args)
        case "consent":
            # Typing /consent LICENCE is the confirmation: the terms were shown on upload.
            return (
                commands.ConfirmConsent(me, args, rights_confirmed=True) if args else AskConsent()
            )
        case "discard":
            return commands.DiscardUploads(me)
        case "train":
            return _train_command(me, words)
        case "imagine":
            return parse_imagine(args).command(me)
        case "restyle" | "extend" | "repaint" | "sketch":
            return parse_restyle(args, name)
        case "styles":
            return commands.ListStyles(me)
        case "style":
            return _style_command(me, words)
        case "status":
            return commands.ShowStatus(me)
        case "cancel":
            if len(words) > 1:
                raise CommandSyntaxError("Give one job id, or none for your newest: /cancel [JOB]")
            return commands.CancelJob(me, words[0] if words else None)
        case "forgetme":
            return commands.EraseMyData(me, confirmed=parse_confirmation(args, "/forgetme"))
        case "admin":
            admin = parse_admin(me, args, replied)
            return ShowHelp(admin=True) if admin is None else admin
    raise CommandSyntaxError(f"Unknown command /{name}.")


TRAIN_USAGE = "Name the style in one word: /train NAME (optionally variant:lora, dora or lokr)"


def _train_command(me: Requester, words: list[str]) -> commands.TrainStyle:
    """`/train NAME [variant:KIND]`: the kind is checked where training starts."""
    name_words = [word for word in words if not word.lower().startswith("variant:")]
    variants = [word.split(":", 1)[1].lower() for word in words if word not in name_words]
    if len(variants) > 1:
        raise CommandSyntaxError("Give variant: once.")
    name = _one_word(name_words, TRAIN_USAGE)
    return commands.TrainStyle(me, name, variant=variants[0] if variants else None)


CAPTIONS_USAGE = (
    "Use /captions, /captions NUMBER CAPTION (- clears it), /captions auto, "
    "/captions accept [NUMBER] or /captions STYLE (/captions style:STYLE for a style "
    "named auto or accept)"
)


_CAPTION = re.compile(r"(?:^|\s)caption:", re.IGNORECASE)


def _split_caption(args: str) -> tuple[str, str | None]:
    """``a.png b.png caption:a city at night``: the paths, and the caption after the
    first ``caption:`` (the rest of the line, spaces and all)."""
    found = _CAPTION.search(args)
    if found is None:
        return args, None
    return args[: found.start()], args[found.end() :].strip() or None


def _captions_command(me: Requester, args: str) -> commands.Command:
    """``/captions`` lists the waiting images' captions, ``/captions 2 TEXT`` sets one,
    ``/captions auto`` asks the captioner for proposals, ``/captions accept [2]`` takes
    them (or one), ``/captions STYLE`` lists those a style trained on; ``style:STYLE``
    says it is a style's name, so a style named "auto" or "accept" can be listed too."""
    first, _, rest = args.strip().partition(" ")
    if not first:
        return commands.ShowCaptions(me)
    if first.lower().startswith("style:") and not rest.strip():
        if not first[len("style:") :]:
            raise CommandSyntaxError(CAPTIONS_USAGE)
        return commands.ShowCaptions(me, first[len("style:") :])
    if first.lower() == "auto" and not rest.strip():
        return commands.SuggestCaptions(me)
    if first.lower() == "accept":
        if not rest.strip():
            return commands.AcceptCaptions(me)
        if rest.strip().isdecimal():
            return commands.AcceptCaptions(me, int(rest.strip()))
        raise CommandSyntaxError(CAPTIONS_USAGE)
    if first.isdecimal():
        if not rest.strip():
            raise CommandSyntaxError(CAPTIONS_USAGE)
        return commands.SetCaption(me, int(first), rest.strip())
    if rest.strip():
        raise CommandSyntaxError(CAPTIONS_USAGE)
    return commands.ShowCaptions(me, first)


def caption_edits(me: Requester, text: str) -> list[commands.SetCaption]:
    """Lines of ``NUMBER CAPTION`` (a reply to the caption listing, where a platform takes
    one): a change for each; a line of another shape says how to write it."""
    edits = []
    for line in text.splitlines():
        if not line.strip():
            continue
        number, _, caption = line.strip().partition(" ")
        if not number.isdecimal() or not caption.strip():
            raise CommandSyntaxError(
                "Write one caption a line, after the image's number: 2 a city at night. "
                "Nothing was changed."
            )
        edits.append(commands.SetCaption(me, int(number), caption.strip()))
    if not edits:
        raise CommandSyntaxError("Write one caption a line, after the image's number.")
    return edits


def _one_word(words: list[str], usage: str) -> str:
    if len(words) != 1:
        raise CommandSyntaxError(usage)
    return words[0]


def _paths(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError as exc:  # an unclosed quote
        raise CommandSyntaxError(f"Could not read the file names: {exc}.") from exc


def _style_command(me: Requester, words: list[str]) -> commands.Command:
    """``/style VERB NAME``; ``share`` takes ``public`` before or after the name (the
    console wrote it before, Telegram after: both habits stay right)."""
    if not words:
        raise CommandSyntaxError(STYLE_USAGE)
    if words[0].lower() not in (*_STYLE_COMMANDS, "share"):
        raise CommandSyntaxError(
            f"Unknown style action {printable(words[0])!r}: use info, share, unshare, "
            "delete or export."
        )
    verb, rest = words[0].lower(), words[1:]
    if verb == "share" and len(rest) == 2 and PUBLIC in (rest[0].lower(), rest[1].lower()):
        name = rest[1] if rest[0].lower() == PUBLIC else rest[0]
        return commands.ShareStyle(me, name, public=True)
    if len(rest) != 1:
        raise CommandSyntaxError(STYLE_USAGE)
    if verb == "share":
        return commands.ShareStyle(me, rest[0])
    return _STYLE_COMMANDS[verb](me, rest[0])


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


RESTYLE_OPTIONS = ("style", "strength", "confirm", "zoom", "shape", "region", "mask", "follow")

_RESTYLE_OPTION = re.compile(r"^(" + "|".join(RESTYLE_OPTIONS) + r"):(.*)$", re.IGNORECASE)


def parse_restyle(args: str, verb: str = "restyle", *, mask_attached: bool = False) -> RestyleArgs:
    """``/restyle``, ``/extend`` (``zoom:1.5|2`` or ``shape:square|portrait``, zoom 2 when
    neither) and ``/repaint`` (``region:LEFT,TOP,WIDTH,HEIGHT`` in percent, or
    ``mask:PATH``: a mask image, white where the picture is drawn anew) and ``/sketch``
    (``follow:edges|depth``, edges when not given).
    ``mask_attached``: the platform brings the mask itself (Telegram's album of two), so
    /repaint needs no region."""
    words: list[str] = []
    options: dict[str, str] = {}
    try:
        split = shlex.split(args)  # a console path may be quoted
    except ValueError:  # a prompt's lone apostrophe ("don't"): plain words then
        split = args.split()
    for word in split:
        match = _RESTYLE_OPTION.match(word)
        if match:
            options[match.group(1).lower()] = match.group(2)
        else:
            words.append(word)
    strength = strength_option(options.get("strength", ""))
    confirm = options.get("confirm", "").lower()
    if confirm not in ("", "yes"):
        raise CommandSyntaxError("confirm takes the word yes: confirm:yes")
    extend = region = mask_path = follow = None
    if verb == "sketch":
        follow = options.get("follow", "").lower() or "edges"
        if follow not in FOLLOW_KINDS:  # the core says which ones this bot has
            raise CommandSyntaxError("follow is edges or depth: follow:edges")
    elif verb == "extend":
        extend = _extension(options)
    elif verb == "repaint" and options.get("mask"):
        if options.get("region"):
            raise CommandSyntaxError("Give a region or a mask, not both.")
        mask_path = options["mask"]
    elif verb == "repaint" and not (mask_attached and not options.get("region")):
        region = _region(options.get("region", ""))
    return RestyleArgs(
        tuple(words),
        options.get("style") or None,
        strength,
        confirmed=confirm == "yes",
        extend=extend,
        region=region,
        mask_path=mask_path,
        follow=follow,
    )


def _extension(options: dict[str, str]) -> str:
    zoom, shape = options.get("zoom", "").lower(), options.get("shape", "").lower()
    if zoom and shape:
        raise CommandSyntaxError("Give a zoom or a shape, not both: zoom:2 or shape:square")
    if shape:
        if shape not in ("square", "portrait"):
            raise CommandSyntaxError("shape is square or portrait: shape:square")
        return shape
    if zoom not in ("", "2", "1.5"):
        raise CommandSyntaxError("zoom is 1.5 or 2: zoom:2")
    return f"zoom{zoom or '2'}"


def strength_option(text: str) -> float | None:
    """A restyle's ``strength:`` as typed (or as a form field holds it); None when empty."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise CommandSyntaxError(
            f"strength:{text.strip()} is not a number; write it like strength:0.6"
        ) from exc


def _region(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        left, top, width, height = (float(part) for part in parts)
    except ValueError as exc:
        raise CommandSyntaxError(
            "Say which part to repaint: region:LEFT,TOP,WIDTH,HEIGHT in percent, "
            "e.g. region:25,25,50,50, or mask:MASK.png (white is repainted)"
        ) from exc
    return left, top, width, height
