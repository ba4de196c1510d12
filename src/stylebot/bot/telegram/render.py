"""How the bot's replies look on Telegram: texts, inline keyboards and callback data.

Everything here is pure (no I/O), so it is the place to change wording or buttons.
Texts are sent without ``parse_mode``: prompts, style names and file names come from
users, and plain text cannot break on markup they happen to contain.

Over 400 lines on purpose: every reply kind's text and keyboard for Telegram in one
place, so the wording is changed here and only here.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from stylebot.bot.core.consent import Licence, PeopleAnswer, people_answer
from stylebot.bot.core.mentions import CommandName, Mention, typed
from stylebot.bot.core.replies import ConsentRequest, JobProgress, StyleChoices

# Telegram's limits (https://core.telegram.org/bots/api#sendmessage and #inlinekeyboardbutton).
MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_ALERT_CHARS = 200
# Bots may send files of at most 50 MB (https://core.telegram.org/bots/api#sending-files).
MAX_BOT_UPLOAD_BYTES = 50 * 1024 * 1024

#: What ``setMyCommands`` registers, so Telegram's command menu lists them.
BOT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("train", "Train a style: /train NAME, with images as files or photos"),
    ("imagine", "Make an image: /imagine PROMPT style:NAME [seed:N] [size:WxH]"),
    ("restyle", "A picture captioned /restyle style:NAME [strength:0.6]: drawn in that style"),
    ("extend", "A picture captioned /extend style:NAME zoom:2 (or shape:square): outpainted"),
    ("repaint", "A picture captioned /repaint style:NAME region:25,25,50,50 PROMPT"),
    ("sketch", "A picture captioned /sketch style:NAME PROMPT: drawn along its edges"),
    ("styles", "The styles you can use here"),
    ("style", "Manage a style: /style info|share|unshare|delete|export NAME"),
    ("verify", "Reply to an image with /verify to trace its watermark"),
    ("status", "Your queued and running jobs"),
    ("cancel", "Cancel your newest queued or running job"),
    ("consent", "Confirm your rights to the waiting images"),
    ("discard", "Forget the images waiting for training"),
    ("captions", "The waiting images' captions; /captions N TEXT changes one"),
    ("optout", "Images you made, captioned /optout: nobody else may train on copies"),
    ("forgetme", "Erase everything of yours: styles, images, jobs (asks first)"),
    ("help", "How to use this bot"),
)

#: Registered for group administrators only (the operator types it in a private chat).
ADMIN_BOT_COMMAND = ("admin", "Admin: pause|resume|quota|removestyle|ban|unban|queue")


def telegram_spelling(mention: Mention) -> str:
    """A command a reply names, as a Telegram user sends it (typed; images come with their
    caption rather than through a command)."""
    if mention.command is CommandName.UPLOAD:
        return "images sent with /train NAME as their caption"
    return typed(mention)


SORRY = "Sorry, something went wrong on my side and nothing was changed. Please try again later."

HELP_TEXT = """\
I train an image style from pictures you made (or hold the rights to) and then draw in it.

1. Send 1 or more reference images, best as files (📎 → File): Telegram re-compresses photos. \
Put /train NAME in the caption (in groups, that is how I know they are for me), or send \
/train NAME afterwards.
2. Confirm your rights and pick a licence with the buttons I show you.
3. When the style is ready: /imagine a lighthouse at dawn style:NAME

Commands:
/train NAME — train a style from the images you sent
/imagine PROMPT style:NAME [negative:TEXT] [seed:N] [steps:N] [size:WxH] [count:N]
/restyle style:NAME [strength:0.6] [PROMPT] — as the caption of a picture (or a reply to \
one): that picture drawn in the style (add confirm:yes for a picture that is not a stylebot \
image of yours)
/extend style:NAME [zoom:1.5|2 or shape:square|portrait] — the same way: the picture on a \
larger canvas, the new area drawn in the style
/repaint style:NAME region:LEFT,TOP,WIDTH,HEIGHT PROMPT — the same way: that region (in \
percent) drawn anew
/sketch style:NAME [follow:edges|depth] [strength:1] PROMPT — the same way: PROMPT drawn \
in the style along the picture's edges (or following its depth)
/styles — the styles you can use here
/style info|share|unshare|delete|export NAME — manage your style (share: with this group; \
"share NAME public": with everyone)
/verify — reply to an image (best the PNG file) to trace its watermark
/status — your jobs; /cancel — cancel your newest job
/consent [LICENCE] — confirm your rights to the waiting images; /discard — forget them
/captions — the waiting images' captions (each image's caption when you sent it); change \
one with /captions 2 NEW CAPTION, or reply to the list with lines of "2 NEW CAPTION"; \
/captions STYLE shows those a style of yours trained on
/optout — as the caption of images you made (or a reply to your message with them): \
nobody else can train a style on copies of them
/forgetme — erase everything I keep of yours (asks first)

Group admins and the bot's operator: /admin lists the admin commands.

In groups, styles shared with the group can be used by its members; private styles only \
by their owner."""

PHOTO_RECOMPRESSION_NOTE = (
    "Note: Telegram re-compresses photos (JPEG, at most 1280 px), which loses detail a "
    "style learns from. For the best result send the originals as files (📎 → File)."
)


# Telegram turns "@name" in plain text into a mention that notifies that person, and has
# no allowed_mentions to stop it. Replies carry names users chose (display names, the
# @name a maker had, prompts), so each "@" gets a zero-width non-joiner after it: it reads
# the same and links to no one. Only the bot's own @name stays a link (to open its chat).
_ZWNJ = "\u200c"
_MENTION = re.compile(r"@(?=\w)")


def quiet_mentions(text: str, bot_username: str | None = None) -> str:
    """``text`` with every @mention broken but the bot's own (see above)."""
    quiet = _MENTION.sub("@" + _ZWNJ, text)
    if bot_username:
        own = re.compile(rf"@{_ZWNJ}({re.escape(bot_username)})(?!\w)", re.IGNORECASE)
        quiet = own.sub(r"@\1", quiet)
    return quiet


def fit(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to Telegram's length limit, marking the cut, and never send it empty."""
    text = text.strip() or "…"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- callback data ---------------------------------------------------------------------------
#
# Short prefixes keep every payload under Telegram's 64-byte limit. Consent payloads carry
# the asking user's id, so a press by anyone else is refused without any server-side state.
# Fields are joined by "|"; a text field (a style name as typed, a licence, an output id)
# has its "%" and "|" percent-encoded, so whatever it holds it stays one field.

ConsentStep = Literal["licence", "people", "confirm", "cancel"]
OutputVerb = Literal[
    "reroll", "vary", "upscale", "info", "delete", "zoom1.5", "zoom2", "square", "portrait"
]

_CONSENT_PREFIX: dict[ConsentStep, str] = {
    "licence": "cl",
    "people": "cp",
    "confirm": "cy",
    "cancel": "cn",
}
_OUTPUT_PREFIX: dict[OutputVerb, str] = {
    "reroll": "or",
    "vary": "ov",
    "upscale": "ou",
    "info": "oi",
    "delete": "od",
    # Extend (stylebot.bot.core.extend.EXTENSIONS).
    "zoom1.5": "ow",
    "zoom2": "ox",
    "square": "os",
    "portrait": "op",
}
_STYLE_DELETE_PREFIX = "sd"
_STYLE_KEEP_PREFIX = "sk"
_ERASE_PREFIX = "ey"
_ERASE_KEEP_PREFIX = "en"


@dataclass(frozen=True)
class ConsentAction:
    """A press on the consent keyboard. ``licence`` and ``people`` (a PeopleAnswer code)
    are the answers chosen so far ("" when none yet): the keyboard carries them, so the
    bot keeps no state per question."""

    step: ConsentStep
    user_id: int
    licence: str = ""
    people: str = ""


@dataclass(frozen=True)
class OutputAction:
    """A press on the buttons under a generated image."""

    verb: OutputVerb
    output_id: str


@dataclass(frozen=True)
class StyleDeleteAction:
    """The answer to "really delete style NAME?" (``confirmed`` False means keep it)."""

    user_id: int
    name: str
    confirmed: bool


@dataclass(frozen=True)
class EraseAction:
    """The answer to /forgetme's "erase everything?" (``confirmed`` False keeps it all)."""

    user_id: int
    confirmed: bool


CallbackAction = ConsentAction | OutputAction | StyleDeleteAction | EraseAction


def _field(text: str) -> str:
    """A text field of callback data: its "%" and "|" encoded, so it stays one field."""
    return text.replace("%", "%25").replace("|", "%7C")


def _unfield(text: str) -> str:
    return urllib.parse.unquote(text)  # one pass, left to right: "%257C" is "%7C"


def encode_callback(action: CallbackAction) -> str:
    match action:
        case ConsentAction(step=step, user_id=user_id, licence=licence, people=people):
            # Without a people answer the data is what keyboards sent before the question.
            data = f"{_CONSENT_PREFIX[step]}|{user_id}|{_field(licence)}" + (
                f"|{_field(people)}" if people else ""
            )
        case OutputAction(verb=verb, output_id=output_id):
            data = f"{_OUTPUT_PREFIX[verb]}|{_field(output_id)}"
        case StyleDeleteAction(user_id=user_id, name=name, confirmed=confirmed):
            prefix = _STYLE_DELETE_PREFIX if confirmed else _STYLE_KEEP_PREFIX
            data = f"{prefix}|{user_id}|{_field(name)}"
        case EraseAction(user_id=user_id, confirmed=confirmed):
            data = f"{_ERASE_PREFIX if confirmed else _ERASE_KEEP_PREFIX}|{user_id}"
    if len(data.encode()) > MAX_CALLBACK_DATA_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_DATA_BYTES} bytes: {data!r}")
    return data


def parse_callback(data: str | None) -> CallbackAction | None:
    """The action a button stands for, or None for data this bot never made."""
    if not data:
        return None
    prefix, _, rest = data.partition("|")
    fields = [_unfield(field) for field in rest.split("|")]
    try:
        for step, code in _CONSENT_PREFIX.items():
            if prefix == code:
                licence = fields[1] if len(fields) > 1 else ""
                people = fields[2] if len(fields) > 2 else ""
                if people and people_answer(people) is None:
                    return None
                return ConsentAction(step, int(fields[0]), licence, people)
        for verb, code in _OUTPUT_PREFIX.items():
            if prefix == code and fields[0]:
                return OutputAction(verb, fields[0])
        if prefix in (_STYLE_DELETE_PREFIX, _STYLE_KEEP_PREFIX) and len(fields) == 2:
            return StyleDeleteAction(int(fields[0]), fields[1], prefix == _STYLE_DELETE_PREFIX)
        if prefix in (_ERASE_PREFIX, _ERASE_KEEP_PREFIX) and len(fields) == 1:
            return EraseAction(int(fields[0]), prefix == _ERASE_PREFIX)
    except ValueError:
        return None
    return None


# -- consent -----------------------------------------------------------------------------------


def consent_text(reply: ConsentRequest, *, from_photos: bool, style_name: str | None) -> str:
    parts = [reply.text]
    if from_photos:
        parts.append(PHOTO_RECOMPRESSION_NOTE)
    parts.append(f"Terms (version {reply.terms_version}): {reply.terms}")
    then = f"training {style_name} starts" if style_name else "I record your consent"
    parts.append(
        "Pick the licence of your images and say whether recognisable people appear in them, "
        f"then press Confirm and {then}."
    )
    return fit("\n\n".join(parts))


def consent_keyboard(
    user_id: int, licences: Sequence[Licence], chosen: str = "", people: str = ""
) -> InlineKeyboardMarkup:
    """One button per licence, then one per people answer (the chosen ones ticked), then
    Confirm and Cancel. Every button carries both answers chosen so far."""
    rows = [
        [
            InlineKeyboardButton(
                ("✓ " if licence.id == chosen else "") + licence.label,
                callback_data=encode_callback(
                    ConsentAction("licence", user_id, licence.id, people)
                ),
            )
        ]
        for licence in licences
    ]
    rows.extend(
        [
            InlineKeyboardButton(
                ("✓ " if answer == people else "") + answer.label,
                callback_data=encode_callback(ConsentAction("people", user_id, chosen, answer)),
            )
        ]
        for answer in PeopleAnswer
    )
    rows.append(
        [
            InlineKeyboardButton(
                "Confirm",
                callback_data=encode_callback(ConsentAction("confirm", user_id, chosen, people)),
            ),
            InlineKeyboardButton(
                "Cancel", callback_data=encode_callback(ConsentAction("cancel", user_id))
            ),
        ]
    )
    return InlineKeyboardMarkup(rows)


# -- jobs and results ----------------------------------------------------------------------------


def progress_text(reply: JobProgress) -> str:
    """The core's progress line with a bar, for the one status message a job has."""
    if reply.total <= 0:
        return reply.text
    width = 12
    filled = max(0, min(width, round(width * reply.step / reply.total)))
    return f"{reply.text}\n{'▰' * filled}{'▱' * (width - filled)}"


def output_keyboard(output_id: str) -> InlineKeyboardMarkup:
    """Buttons under a result. Anyone in the chat may press them; the core decides what
    each person may do (only the maker deletes, only those who may use the style re-roll)."""

    def button(label: str, verb: OutputVerb) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            label, callback_data=encode_callback(OutputAction(verb, output_id))
        )

    return InlineKeyboardMarkup(
        [
            [
                button("🎲 Re-roll", "reroll"),
                button("🪄 Vary", "vary"),
                button("🔍 Upscale", "upscale"),
            ],
            [
                button("🔭 1.5x", "zoom1.5"),
                button("🔭 2x", "zoom2"),
                button("⬜ Square", "square"),
                button("📱 Portrait", "portrait"),
            ],
            [button("ℹ️ Info", "info"), button("🗑 Delete", "delete")],
        ]
    )


def photo_caption(output_id: str) -> str:
    return f"Output {output_id}. The PNG file below is the original, with its provenance data."


def document_caption(output_id: str) -> str:
    return f"stylebot output {output_id} (PNG with provenance metadata; /verify traces it)"


def preview_hint_text(display_name: str, bot_username: str | None) -> str:
    """Said in a group, once per training, when its owner's private chat is closed to the bot."""
    chat = f"@{bot_username}" if bot_username else "me"
    return (
        f"{display_name}, your style in training has previews, and they are for you only, "
        f"so I send them in our private chat, where I cannot write to you yet. Open a chat "
        f"with {chat} and press Start to get the next ones."
    )


def private_chat_closed_text(
    display_name: str, bot_username: str | None, what: str, command: str | None
) -> str:
    """Said in a group when ``what`` (for the asker only) cannot go to their private chat."""
    chat = f"@{bot_username}" if bot_username else "me"
    again = f"send {command} again" if command else "ask again"
    return (
        f"{display_name}, {what} is for you only, so I send it in our private chat, where I "
        f"cannot write to you yet. Open a chat with {chat}, press Start, then {again}."
    )


def sent_privately_text(display_name: str, what: str) -> str:
    """The group's note when something for the asker went to their private chat."""
    return f"{display_name}, I sent you {what} in our private chat."


def file_too_big_text(filename: str, size: int, limit: int = MAX_BOT_UPLOAD_BYTES) -> str:
    """A file larger than Telegram lets a bot send: say so, with the numbers and a way out."""
    mb = 1024 * 1024
    return (
        f"{filename} is {size / mb:.1f} MB, and Telegram lets a bot send files of at most "
        f"{limit / mb:.0f} MB, so I cannot send it here. Nothing was changed. Ask the bot's "
        "operator for the file: it is kept on their server."
    )


def style_choices_text(reply: StyleChoices) -> str:
    if not reply.names:
        return "No styles you can use here yet."
    return "Styles you can use here:\n" + "\n".join(f"- {name}" for name in reply.names)


def delete_style_keyboard(user_id: int, name: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    "Delete it",
                    callback_data=encode_callback(StyleDeleteAction(user_id, name, True)),
                ),
                InlineKeyboardButton(
                    "Keep it",
                    callback_data=encode_callback(StyleDeleteAction(user_id, name, False)),
                ),
            ]
        ]
    )


def erase_keyboard(user_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    "Erase everything", callback_data=encode_callback(EraseAction(user_id, True))
                ),
                InlineKeyboardButton(
                    "Keep it", callback_data=encode_callback(EraseAction(user_id, False))
                ),
            ]
        ]
    )
