"""A small fake Telegram Bot API server for end-to-end tests.

Nothing here reaches Telegram, so the real python-telegram-bot client is pointed at this
server instead (``base_url`` / ``base_file_url``). The fake speaks the Bot API's HTTP: it
accepts the form-urlencoded and multipart bodies that PTB sends, answers with the same
``{"ok": ..., "result": ...}`` envelopes and error descriptions Telegram uses, and keeps the
behaviour that a bot must cope with in production:

* ``getUpdates`` is a real long poll that honours ``offset`` (confirmed updates are forgotten)
  and is released when the fake stops, so PTB's shutdown does not wait on it. A second
  ``getUpdates`` while one is held terminates the first with 409, as Telegram does when two
  bot instances poll the same token.
* Photos are re-encoded as JPEG (quality 87, longest side 1280) and offered in several sizes,
  like Telegram does, so tests see what recompression does to an image; documents are kept
  byte-for-byte.
* ``parse_mode`` text is parsed (HTML, MarkdownV2, Markdown); malformed markup gets Telegram's
  ``can't parse entities`` error, so a bot that forgets to escape user text fails in tests too.
* Length limits, unknown chats and messages, "message is not modified", callback data over 64
  bytes, stale callback query ids and files over the 20 MB download limit answer 400.
* ``flood()`` makes a method answer 429 with ``retry_after``; calls made before that time has
  passed keep getting 429 with the remaining wait.
* ``migrate_group()`` upgrades a group to a supergroup with a new chat id: from then on every
  call naming the old id answers 400 with ``migrate_to_chat_id``, as Telegram does.
* An uploaded file over the 50 MB a bot may send answers 413 "Request Entity Too Large";
  a photo over 10 MB answers 400 PHOTO_SAVE_FILE_INVALID, one whose sides add up to more
  than 10000 px or whose ratio is over 20 answers 400 PHOTO_INVALID_DIMENSIONS; an album
  (``sendMediaGroup``) takes 2-10 items and is refused whole when one is refused.
* Group membership: ``set_member_status`` makes a user the group's creator, an administrator
  (or anything else); ``getChatMember`` and ``getChatAdministrators`` answer from it. A user
  who posted in a group is a member; one never seen there gets "user not found".
  ``send_text(..., as_group=True)`` is an anonymous admin posting as the group.

Test-side helpers inject updates (``send_text``, ``send_photo``, ``send_document``,
``send_album``, ``press_button``, ``reply``) and inspect what the bot did (``requests``,
``wait_for``, ``sent_messages``, ``wait_for_sent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "AlbumDocument",
    "FakeChat",
    "FakeTelegram",
    "FakeUser",
    "RecordedCall",
    "StoredFile",
    "StoredMessage",
    "TelegramApiError",
    "UploadedFile",
]

_LOGGER = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Telegram's own numbers: https://core.telegram.org/bots/api and https://limits.tginfo.me
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
# The account Telegram shows as the sender of an anonymous admin's messages in groups.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHAT_MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # sendPhoto: "The photo must be at most 10 MB in size."
PHOTO_MAX_SIDE = 1280
PHOTO_JPEG_QUALITY = 87
# Smaller renditions Telegram adds next to the full photo ("s", "m", "x" sizes).
PHOTO_THUMB_SIDES = (90, 320, 800)

# Form fields PTB JSON-encodes (objects and arrays); everything else arrives as plain text.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "media",
        "commands",
        "scope",
        "reply_parameters",
        "link_preview_options",
        "allowed_updates",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "message_thread_id",
        "reply_to_message_id",
        "cache_time",
        "from_chat_id",
        "user_id",
    }
)
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "show_caption_above_media",
        "has_spoiler",
        "disable_content_type_detection",
    }
)

_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")


def _cut_off(request: web.Request) -> None:
    """Drop the connection unanswered, as a server that went away does."""
    if request.transport is not None:
        request.transport.close()
    raise ConnectionResetError("the fake Bot API is offline")


def _utf16_len(text: str) -> int:
    """Telegram counts entity offsets and lengths in UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


class TelegramApiError(Exception):
    """An error answer of the Bot API; raised inside the fake and turned into the envelope."""

    def __init__(
        self, error_code: int, description: str, parameters: JsonDict | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def envelope(self) -> JsonDict:
        """The JSON body Telegram sends for this error."""
        body: JsonDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(detail: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {detail}")


def _too_large() -> TelegramApiError:
    """Telegram's answer to an upload over the 50 MB a bot may send."""
    return TelegramApiError(413, "Request Entity Too Large")


# --------------------------------------------------------------------------------------------
# Value types the tests hold on to
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user as tests create it; ``to_api`` is the Bot API ``User`` object."""

    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True)
class FakeChat:
    """A chat the fake knows; the bot may only send to chats registered with the fake."""

    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    username: str | None = None

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        if self.first_name:
            data["first_name"] = self.first_name
        if self.username:
            data["username"] = self.username
        return data


@dataclass(frozen=True)
class UploadedFile:
    """A multipart part exactly as the client uploaded it."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    """A file the fake can serve through ``getFile`` and ``/file/bot{token}/{file_path}``."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    def photo_size(self) -> JsonDict:
        """The Bot API ``PhotoSize`` object for this file."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class AlbumDocument:
    """A document item of ``FakeTelegram.send_album`` (plain ``bytes`` items are photos)."""

    data: bytes
    filename: str
    mime_type: str = "application/octet-stream"


@dataclass
class RecordedCall:
    """One Bot API call as the fake received and answered it."""

    method: str
    params: JsonDict
    files: dict[str, UploadedFile]
    http_status: int
    response: JsonDict

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        return self.response.get("result")


@dataclass
class StoredMessage:
    """A message in a chat, from a user (injected by a test) or from the bot.

    ``api`` is the current Bot API ``Message`` object (edits applied). For bot messages,
    ``uploads`` keeps the bytes the bot uploaded as-is (a PNG stays a PNG) while ``photo``
    holds what Telegram would serve back: the re-encoded JPEG renditions.
    """

    chat_id: int
    message_id: int
    api: JsonDict
    from_bot: bool
    uploads: list[UploadedFile] = field(default_factory=list)
    photo: list[StoredFile] = field(default_factory=list)
    document: StoredFile | None = None
    text_history: list[str] = field(default_factory=list)
    deleted: bool = False
    delivered: bool = True

    @property
    def text(self) -> str | None:
        return self.api.get("text")

    @property
    def caption(self) -> str | None:
        return self.api.get("caption")

    @property
    def reply_markup(self) -> JsonDict | None:
        return self.api.get("reply_markup")

    @property
    def media_group_id(self) -> str | None:
        return self.api.get("media_group_id")

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """``(text, callback_data)`` of every inline keyboard button, row by row."""
        markup = self.reply_markup or {}
        return [
            (button.get("text", ""), button.get("callback_data"))
            for row in markup.get("inline_keyboard", [])
            for button in row
        ]

    @property
    def photo_bytes(self) -> bytes | None:
        """The largest photo rendition, as a user downloading it would get it."""
        return self.photo[-1].data if self.photo else None

    @property
    def document_bytes(self) -> bytes | None:
        return self.document.data if self.document else None


@dataclass
class _Refusal:
    skip: int
    description: str
    retry_after: int | None = None


@dataclass
class _Flood:
    remaining: int
    retry_after: int
    blocked_until: float = 0.0


@dataclass
class _CallbackQuery:
    query_id: str
    answer: JsonDict | None = None


# --------------------------------------------------------------------------------------------
# parse_mode: text with markup -> plain text + entities, with Telegram's errors
# --------------------------------------------------------------------------------------------

_HTML_TAGS: Mapping[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED_ENTITIES: Mapping[str, str] = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z]+);")
_HTML_HREF_RE = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")


class _TextBuilder:
    """Accumulates plain text and knows its current UTF-16 offset."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.offset += _utf16_len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _entity(kind: str, start: int, end: int, **extra: Any) -> JsonDict | None:
    if end <= start:
        return None
    return {"type": kind, "offset": start, "length": end - start, **extra}


def _parse_html(source: str) -> tuple[str, list[JsonDict]]:
    out = _TextBuilder()
    entities: list[JsonDict] = []
    stack: list[tuple[str, int, JsonDict]] = []
    i = 0
    while i < len(source):
        char = source[i]
        byte_offset = len(source[:i].encode("utf-8"))  # Telegram reports byte offsets
        if char == "<":
            end = source.find(">", i)
            if end == -1:
                raise _bad_request(
                    f"can't parse entities: Unclosed start tag at byte offset {byte_offset}"
                )
            inner = source[i + 1 : end].strip()
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack or stack[-1][0] != name:
                    raise _bad_request(
                        f"can't parse entities: Unmatched end tag at byte offset {byte_offset}, "
                        f'expected "</{stack[-1][0] if stack else ""}>", found "</{name}>"'
                    )
                tag, start, extra = stack.pop()
                made = _entity(_HTML_TAGS[tag], start, out.offset, **extra)
                if made:
                    entities.append(made)
            else:
                name, _, attrs = inner.partition(" ")
                name = name.lower()
                if name not in _HTML_TAGS or (name == "span" and "tg-spoiler" not in attrs):
                    raise _bad_request(
                        f'can\'t parse entities: Unsupported start tag "{name}" at byte '
                        f"offset {byte_offset}"
                    )
                extra: JsonDict = {}
                if name == "a":
                    match = _HTML_HREF_RE.search(attrs)
                    extra["url"] = next((g for g in match.groups() if g), "") if match else ""
                stack.append((name, out.offset, extra))
            i = end + 1
            continue
        if char == "&":
            match = _HTML_ENTITY_RE.match(source, i)
            if match:
                ref = match.group(1)
                if ref.startswith("#x"):
                    out.add(chr(int(ref[2:], 16)))
                elif ref.startswith("#"):
                    out.add(chr(int(ref[1:])))
                elif ref in _HTML_NAMED_ENTITIES:
                    out.add(_HTML_NAMED_ENTITIES[ref])
                else:
                    raise _bad_request(
                        f'can\'t parse entities: Unsupported HTML entity "&{ref};" at byte '
                        f"offset {byte_offset}"
                    )
                i = match.end()
                continue
        out.add(char)
        i += 1
    if stack:
        raise _bad_request(
            "can't parse entities: Can't find end tag corresponding to start tag "
            f'"{stack[-1][0]}"'
        )
    return out.text(), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_MARKERS: Mapping[str, tuple[str, str]] = {
    "*": ("bold", "Bold"),
    "_": ("italic", "Italic"),
    "__": ("underline", "Underline"),
    "~": ("strikethrough", "Strikethrough"),
    "||": ("spoiler", "Spoiler"),
}


def _parse_markdown_v2(source: str) -> tuple[str, list[JsonDict]]:
    out = _TextBuilder()
    entities: list[JsonDict] = []
    open_marks: dict[str, int] = {}
    link_start: int | None = None
    i = 0
    at_line_start = True
    while i < len(source):
        char = source[i]
        byte_offset = len(source[:i].encode("utf-8"))
        if char == "\\":
            if i + 1 >= len(source):
                raise _bad_request(
                    "can't parse entities: Can't find escaped character at byte offset "
                    f"{byte_offset}"
                )
            out.add(source[i + 1])
            i += 2
            at_line_start = False
            continue
        if char == "`":
            fence = "```" if source.startswith("```", i) else "`"
            end = source.find(fence, i + len(fence))
            while end != -1 and source[end - 1] == "\\":
                end = source.find(fence, end + 1)
            if end == -1:
                kind = "Pre" if fence == "```" else "Code"
                raise _bad_request(
                    f"can't parse entities: Can't find end of {kind} entity at byte offset "
                    f"{byte_offset}"
                )
            body = source[i + len(fence) : end]
            language = ""
            if fence == "```" and "\n" in body:
                first, rest = body.split("\n", 1)
                if first and " " not in first:
                    language, body = first, rest
            body = re.sub(r"\\([`\\])", r"\1", body)
            start = out.offset
            out.add(body)
            extra = {"language": language} if language else {}
            made = _entity("pre" if fence == "```" else "code", start, out.offset, **extra)
            if made:
                entities.append(made)
            i = end + len(fence)
            at_line_start = False
            continue
        marker = next(
            (m for m in ("||", "__", "*", "_", "~") if source.startswith(m, i)),
            None,
        )
        if marker is not None:
            if marker in open_marks:
                made = _entity(_MDV2_MARKERS[marker][0], open_marks.pop(marker), out.offset)
                if made:
                    entities.append(made)
            else:
                open_marks[marker] = out.offset
            i += len(marker)
            at_line_start = False
            continue
        if char == "[":
            link_start = out.offset
            i += 1
            continue
        if char == "]" and link_start is not None:
            match = re.compile(r"\]\(((?:[^)\\]|\\.)*)\)").match(source, i)
            if not match:
                raise _bad_request(
                    f"can't parse entities: Character ']' is reserved and must be escaped with "
                    f"the preceding '\\' (byte offset {byte_offset})"
                )
            url = re.sub(r"\\(.)", r"\1", match.group(1))
            made = _entity("text_link", link_start, out.offset, url=url)
            if made:
                entities.append(made)
            link_start = None
            i = match.end()
            continue
        if char == ">" and at_line_start:
            i += 1
            continue
        if char in _MDV2_RESERVED:
            raise _bad_request(
                f"can't parse entities: Character '{char}' is reserved and must be escaped "
                "with the preceding '\\'"
            )
        out.add(char)
        at_line_start = char == "\n"
        i += 1
    if open_marks:
        marker, _start = next(iter(open_marks.items()))
        raise _bad_request(
            f"can't parse entities: Can't find end of {_MDV2_MARKERS[marker][1]} entity"
        )
    if link_start is not None:
        raise _bad_request("can't parse entities: Can't find end of a URL")
    return out.text(), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _parse_markdown(source: str) -> tuple[str, list[JsonDict]]:
    """Legacy Markdown: only ``*``, ``_``, backticks and links are special; no nesting."""
    out = _TextBuilder()
    entities: list[JsonDict] = []
    i = 0
    while i < len(source):
        char = source[i]
        byte_offset = len(source[:i].encode("utf-8"))
        kinds = {"*": "bold", "_": "italic", "`": "code"}
        if source.startswith("```", i) or char in kinds:
            fence = "```" if source.startswith("```", i) else char
            end = source.find(fence, i + len(fence))
            if end == -1:
                raise _bad_request(
                    "can't parse entities: Can't find end of the entity starting at byte "
                    f"offset {byte_offset}"
                )
            start = out.offset
            out.add(source[i + len(fence) : end])
            made = _entity("pre" if fence == "```" else kinds[fence], start, out.offset)
            if made:
                entities.append(made)
            i = end + len(fence)
            continue
        if char == "[":
            match = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(source, i)
            if match:
                start = out.offset
                out.add(match.group(1))
                made = _entity("text_link", start, out.offset, url=match.group(2))
                if made:
                    entities.append(made)
                i = match.end()
                continue
        out.add(char)
        i += 1
    return out.text(), entities


def _apply_parse_mode(
    text: str, parse_mode: str | None, explicit_entities: list[JsonDict] | None
) -> tuple[str, list[JsonDict]]:
    """What Telegram stores for ``text`` sent with ``parse_mode`` (or explicit entities)."""
    if explicit_entities:
        return text, list(explicit_entities)
    mode = (parse_mode or "").lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown(text)
    if mode:
        raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
    return text, []


def _command_entities(text: str) -> list[JsonDict]:
    """``bot_command`` entities the way Telegram marks them in user messages."""
    entities = []
    for match in _COMMAND_RE.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": _utf16_len(text[: match.start()]),
                "length": _utf16_len(match.group(0)),
            }
        )
    return entities


def _decode_form_value(name: str, value: str) -> Any:
    """PTB sends non-string values JSON-encoded in form fields; undo that per parameter."""
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if name in _INT_PARAMS:
        try:
            return int(value)
        except ValueError:
            return value  # "@channelusername" is a valid chat_id
    if name in _FLOAT_PARAMS:
        try:
            return float(value)
        except ValueError:
            return value
    if name in _BOOL_PARAMS:
        return value.lower() in ("true", "1")
    return value


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeTelegram:
    """A Bot API server on 127.0.0.1 that the real python-telegram-bot client talks to.

    Usage::

        fake = FakeTelegram(token="123:ABC")
        await fake.start()
        app = (
            Application.builder().token(fake.token)
            .base_url(fake.base_url).base_file_url(fake.base_file_url).build()
        )
        ...
        await fake.stop()  # after the application has stopped

    ``privacy_mode=True`` delivers only the group messages Telegram delivers to a bot in
    privacy mode (commands, replies to the bot, mentions); the default delivers everything,
    like a bot whose privacy mode was turned off in BotFather.
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_username: str = "stylebot_test_bot",
        bot_first_name: str = "Stylebot",
        privacy_mode: bool = False,
    ) -> None:
        match = _TOKEN_RE.match(token)
        if not match:
            raise ValueError(f"not a Bot API token: {token!r} (expected '<digits>:<secret>')")
        self.token = token
        self.privacy_mode = privacy_mode
        self.bot = FakeUser(
            id=int(match.group(1)),
            first_name=bot_first_name,
            username=bot_username,
            is_bot=True,
        )
        self.requests: list[RecordedCall] = []
        self._chats: dict[int, FakeChat] = {}
        self._messages: dict[tuple[int, int], StoredMessage] = {}
        self._next_message_id: dict[int, int] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._media_group_counter = itertools.count(1)
        self._callback_counter = itertools.count(1)
        self._callback_queries: dict[str, _CallbackQuery] = {}
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}
        self._floods: dict[str, _Flood] = {}
        self._refusals: dict[str, _Refusal] = {}
        # Old group id -> the id of the supergroup it was upgraded to.
        self._migrated: dict[int, int] = {}
        # (chat id, user id) -> ChatMember status, and the users behind them.
        self._member_status: dict[tuple[int, int], str] = {}
        self._members: dict[tuple[int, int], FakeUser] = {}
        self._pending_updates: list[JsonDict] = []
        self._next_update_id = 1
        self._poll_generation = 0
        self._closing = False
        self._updates_changed: asyncio.Condition | None = None
        self._activity: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port: int | None = None
        # Between go_offline() and come_back(): nothing answers (an outage).
        self._offline = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind a random port on 127.0.0.1 and start serving."""
        self._updates_changed = asyncio.Condition()
        self._activity = asyncio.Condition()
        # Bodies a little over the limit are read, to answer them as Telegram does (413).
        app = web.Application(client_max_size=2 * MAX_UPLOAD_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # A short shutdown timeout: held long polls are released before cleanup anyway.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        self._port = int(self._runner.addresses[0][1])

    async def go_offline(self) -> None:
        """An outage: the port refuses connections, and a request on a connection the
        client kept open is cut before any answer (a long poll held now ends empty)."""
        self._offline = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._updates_changed is not None:
            async with self._updates_changed:
                self._updates_changed.notify_all()

    async def come_back(self) -> None:
        """The end of the outage: serving again on the same port."""
        assert self._runner is not None, "FakeTelegram.start() has not been awaited"
        assert self._port is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await self._site.start()
        self._offline = False

    async def stop(self) -> None:
        """Release held long polls (PTB's shutdown would otherwise wait on them), then close."""
        self._closing = True
        if self._updates_changed is not None:
            async with self._updates_changed:
                self._updates_changed.notify_all()
        if self._activity is not None:
            async with self._activity:
                self._activity.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegram.start() has not been awaited")
        return self._port

    @property
    def base_url(self) -> str:
        """For ``ApplicationBuilder.base_url``: PTB appends the token to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``ApplicationBuilder.base_file_url``: PTB appends the token to it."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- test side: chats and users ----------------------------------------------------------

    def user(
        self,
        id: int,
        first_name: str = "Tester",
        *,
        username: str | None = None,
        last_name: str | None = None,
        language_code: str | None = "en",
    ) -> FakeUser:
        """A human user (``id`` must be positive, as Telegram user ids are)."""
        if id <= 0:
            raise ValueError("Telegram user ids are positive")
        return FakeUser(
            id=id,
            first_name=first_name,
            username=username,
            last_name=last_name,
            language_code=language_code,
        )

    def private_chat(self, user: FakeUser) -> FakeChat:
        """The private chat between ``user`` and the bot (its id is the user's id)."""
        chat = FakeChat(
            id=user.id, type="private", first_name=user.first_name, username=user.username
        )
        self._chats[chat.id] = chat
        return chat

    def group_chat(self, id: int, title: str = "Test group") -> FakeChat:
        """A group the bot is a member of; ids starting with -100 are supergroups."""
        if id >= 0:
            raise ValueError("group chat ids are negative")
        kind = "supergroup" if str(id).startswith("-100") else "group"
        chat = FakeChat(id=id, type=kind, title=title)
        self._chats[chat.id] = chat
        return chat

    def set_member_status(self, chat: FakeChat, user: FakeUser, status: str) -> None:
        """Make ``user`` the group's ``creator``, an ``administrator``, a plain ``member``
        (or ``restricted``, ``left``, ``kicked``), as getChatMember will report."""
        if status not in CHAT_MEMBER_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._member_status[(chat.id, user.id)] = status
        self._members[(chat.id, user.id)] = user

    # -- test side: injecting updates --------------------------------------------------------

    async def send_text(
        self,
        chat: FakeChat,
        user: FakeUser,
        text: str,
        *,
        reply_to: StoredMessage | None = None,
        as_group: bool = False,
    ) -> StoredMessage:
        """A user writes ``text``; ``/commands`` get ``bot_command`` entities like on Telegram.

        ``as_group``: an anonymous admin of the group posts it, so the bot sees the group as
        ``sender_chat`` and Telegram's GroupAnonymousBot as ``from``, never ``user``."""
        fields: JsonDict = {"text": text}
        entities = _command_entities(text)
        if entities:
            fields["entities"] = entities
        if as_group:
            if chat.type == "private":
                raise ValueError("only groups have anonymous admins")
            fields["sender_chat"] = chat.to_api()
        return await self._user_message(chat, user, fields, reply_to=reply_to)

    async def reply(
        self, chat: FakeChat, user: FakeUser, to_message: StoredMessage, text: str
    ) -> StoredMessage:
        """A user replies to ``to_message`` with ``text`` (e.g. ``/verify`` on an image)."""
        return await self.send_text(chat, user, text, reply_to=to_message)

    async def send_photo(
        self,
        chat: FakeChat,
        user: FakeUser,
        image: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
        *,
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        """A user sends a photo; it is stored re-encoded as JPEG in several sizes."""
        sizes = self._store_photo(image)
        fields: JsonDict = {"photo": [size.photo_size() for size in sizes]}
        self._add_caption(fields, caption)
        if media_group_id:
            fields["media_group_id"] = media_group_id
        message = await self._user_message(chat, user, fields, reply_to=reply_to, photo=sizes)
        return message

    async def send_document(
        self,
        chat: FakeChat,
        user: FakeUser,
        data: bytes,
        filename: str,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
        media_group_id: str | None = None,
        *,
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        """A user sends a file as a document; its bytes are kept exactly."""
        stored = self._store_file(data, folder="documents", filename=filename, mime=mime_type)
        fields: JsonDict = {"document": self._document_api(stored, filename)}
        self._add_caption(fields, caption)
        if media_group_id:
            fields["media_group_id"] = media_group_id
        return await self._user_message(chat, user, fields, reply_to=reply_to, document=stored)

    async def send_album(
        self,
        chat: FakeChat,
        user: FakeUser,
        items: Sequence[bytes | AlbumDocument],
        caption: str | None = None,
    ) -> list[StoredMessage]:
        """A media group: one message per item sharing a ``media_group_id``, caption on the
        first, delivered as separate updates like Telegram does."""
        if not 2 <= len(items) <= 10:
            raise ValueError("an album holds 2 to 10 items")
        group_id = f"{int(time.time())}{next(self._media_group_counter):06d}"
        messages = []
        for index, item in enumerate(items):
            item_caption = caption if index == 0 else None
            if isinstance(item, AlbumDocument):
                message = await self.send_document(
                    chat,
                    user,
                    item.data,
                    item.filename,
                    item.mime_type,
                    caption=item_caption,
                    media_group_id=group_id,
                )
            else:
                message = await self.send_photo(
                    chat, user, item, caption=item_caption, media_group_id=group_id
                )
            messages.append(message)
        return messages

    async def press_button(
        self, chat: FakeChat, user: FakeUser, message: StoredMessage, callback_data: str
    ) -> str:
        """A user presses an inline button of a bot message; returns the callback query id.

        Raises ``AssertionError`` if the message (as currently stored, edits applied) has no
        button with that ``callback_data``: a user cannot press a button that is not there.
        """
        current = self._messages.get((chat.id, message.message_id))
        if current is None or current.deleted:
            raise AssertionError(f"message {message.message_id} is not in chat {chat.id}")
        if callback_data not in [data for _text, data in current.buttons]:
            raise AssertionError(
                f"message {message.message_id} has no button with callback_data "
                f"{callback_data!r}; buttons: {current.buttons}"
            )
        query_id = f"{user.id}{next(self._callback_counter):08d}"
        self._callback_queries[query_id] = _CallbackQuery(query_id)
        await self._queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.to_api(),
                    "message": dict(current.api),
                    "chat_instance": str(abs(chat.id) * 7919 % 10**12),
                    "data": callback_data,
                }
            }
        )
        return query_id

    async def press_and_answer(
        self, chat: FakeChat, user: FakeUser, message: StoredMessage, callback_data: str
    ) -> JsonDict:
        """Press a button and wait for the bot's ``answerCallbackQuery`` parameters."""
        query = await self.press_button(chat, user, message, callback_data)
        await self.wait_for(lambda _call: self.callback_answer(query) is not None)
        answer = self.callback_answer(query)
        assert answer is not None
        return answer

    def callback_answer(self, query_id: str) -> JsonDict | None:
        """The ``answerCallbackQuery`` parameters the bot sent for ``query_id``, if any."""
        query = self._callback_queries.get(query_id)
        return query.answer if query else None

    # -- test side: flood control ------------------------------------------------------------

    def flood(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after``.

        Like Telegram, a call made before ``retry_after`` seconds have passed since a 429
        also gets 429 (with the remaining seconds), so a bot must actually wait.
        """
        if retry_after < 1 or times < 1:
            raise ValueError("retry_after and times must be at least 1")
        self._floods[method.lower()] = _Flood(remaining=times, retry_after=retry_after)

    def refuse(
        self, method: str, description: str, *, skip: int = 0, retry_after: int | None = None
    ) -> None:
        """Answer one call of ``method``, after ``skip`` more go through, with 400 and
        ``description`` (Telegram's "Bad Request: IMAGE_PROCESS_FAILED", say), or with
        429 and ``retry_after`` when that is given."""
        self._refusals[method.lower()] = _Refusal(skip, description, retry_after)

    # -- test side: group upgrades -----------------------------------------------------------

    def migrate_group(self, chat: FakeChat, new_id: int) -> FakeChat:
        """Upgrade the group ``chat`` to a supergroup with id ``new_id`` (``-100...``).

        Like Telegram, the members come along, and any later call naming the old id answers
        400 with ``parameters.migrate_to_chat_id``.
        """
        if chat.type != "group":
            raise ValueError("only basic groups are upgraded to supergroups")
        if not str(new_id).startswith("-100"):
            raise ValueError("supergroup ids start with -100")
        supergroup = self.group_chat(new_id, chat.title or "Test group")
        for (chat_id, user_id), user in list(self._members.items()):
            if chat_id == chat.id:
                self._members[(new_id, user_id)] = user
                status = self._member_status.get((chat_id, user_id))
                if status is not None:
                    self._member_status[(new_id, user_id)] = status
        self._migrated[chat.id] = new_id
        return supergroup

    # -- test side: inspection ---------------------------------------------------------------

    def calls(self, method: str) -> list[RecordedCall]:
        """Every recorded call of ``method`` (case-insensitive, as Telegram treats names)."""
        return [call for call in self.requests if call.method.lower() == method.lower()]

    async def wait_for(
        self,
        predicate: Callable[[RecordedCall], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of the test-side API
        *,
        since: int = 0,
    ) -> RecordedCall:
        """The first answered call from ``requests[since:]`` matching ``predicate``.

        Waits for it up to ``timeout`` seconds; on timeout raises ``TimeoutError`` listing the
        calls seen, which is usually enough to tell what the bot did instead.
        """
        assert self._activity is not None, "FakeTelegram.start() has not been awaited"
        deadline = asyncio.get_running_loop().time() + timeout
        checked = since
        async with self._activity:
            while True:
                for call in self.requests[checked:]:
                    if predicate(call):
                        return call
                checked = max(checked, len(self.requests))
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 or self._closing:
                    seen = [
                        f"{c.method}({_summary(c.params)}) -> {c.http_status}"
                        for c in self.requests[since:]
                        if c.method.lower() != "getupdates"
                    ]
                    raise TimeoutError(
                        f"no matching Bot API call within {timeout}s; calls seen: {seen}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._activity.wait(), remaining)

    def sent_messages(
        self, chat: FakeChat | int, *, include_deleted: bool = False
    ) -> list[StoredMessage]:
        """What the bot sent to ``chat``, oldest first, with edits applied."""
        chat_id = chat.id if isinstance(chat, FakeChat) else chat
        return [
            message
            for (cid, _mid), message in sorted(self._messages.items())
            if cid == chat_id and message.from_bot and (include_deleted or not message.deleted)
        ]

    async def wait_for_sent(
        self,
        chat: FakeChat | int,
        predicate: Callable[[StoredMessage], bool] = lambda _message: True,
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of the test-side API
    ) -> StoredMessage:
        """The first bot message in ``chat`` matching ``predicate`` (checked after every call,
        so a message that becomes a match by being edited is found too)."""

        def matching() -> list[StoredMessage]:
            return [message for message in self.sent_messages(chat) if predicate(message)]

        if found := matching():
            return found[0]
        await self.wait_for(lambda _call: bool(matching()), timeout, since=len(self.requests))
        return matching()[0]

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """The commands the bot set with ``setMyCommands`` for a scope and language."""
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    def file_bytes(self, file_id: str) -> bytes:
        """The stored bytes of any file the fake knows."""
        return self._files[file_id].data

    # -- internals: storing ------------------------------------------------------------------

    def _store_file(
        self,
        data: bytes,
        *,
        folder: str,
        filename: str | None = None,
        mime: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredFile:
        number = next(self._file_counter)
        suffix = ""
        if filename and "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        elif folder == "photos":
            suffix = ".jpg"
        digest = hashlib.sha256(data).hexdigest()
        stored = StoredFile(
            file_id=f"FAKE{folder[:3].upper()}{number:06d}{digest[:16]}",
            file_unique_id=f"U{digest[:15]}",
            file_path=f"{folder}/file_{number}{suffix}",
            data=data,
            mime_type=mime,
            width=width,
            height=height,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _store_photo(self, image: bytes) -> list[StoredFile]:
        """Re-encode like Telegram: EXIF rotation applied, metadata dropped, RGB JPEG at
        quality 87 with the longest side at most 1280, plus smaller renditions."""
        try:
            with Image.open(io.BytesIO(image)) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise _bad_request("IMAGE_PROCESS_FAILED") from exc
        width, height = picture.size
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise _bad_request("PHOTO_INVALID_DIMENSIONS")
        sides = [side for side in PHOTO_THUMB_SIDES if side < max(width, height)]
        sides.append(PHOTO_MAX_SIDE)
        sizes: list[StoredFile] = []
        for side in sides:
            rendition = picture.copy()
            rendition.thumbnail((side, side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            rendition.save(buffer, format="JPEG", quality=PHOTO_JPEG_QUALITY)
            sizes.append(
                self._store_file(
                    buffer.getvalue(),
                    folder="photos",
                    mime="image/jpeg",
                    width=rendition.width,
                    height=rendition.height,
                )
            )
        return sizes

    @staticmethod
    def _document_api(stored: StoredFile, filename: str | None) -> JsonDict:
        data: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if filename:
            data["file_name"] = filename
        if stored.mime_type:
            data["mime_type"] = stored.mime_type
        return data

    @staticmethod
    def _add_caption(fields: JsonDict, caption: str | None) -> None:
        if caption:
            fields["caption"] = caption
            entities = _command_entities(caption)
            if entities:
                fields["caption_entities"] = entities

    def _allocate_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _reply_api(self, message: StoredMessage) -> JsonDict:
        """``reply_to_message`` carries the replied message without its own reply (one level)."""
        replied = dict(message.api)
        replied.pop("reply_to_message", None)
        return replied

    async def _user_message(
        self,
        chat: FakeChat,
        user: FakeUser,
        fields: JsonDict,
        *,
        reply_to: StoredMessage | None,
        photo: list[StoredFile] | None = None,
        document: StoredFile | None = None,
    ) -> StoredMessage:
        self._chats.setdefault(chat.id, chat)
        anonymous = "sender_chat" in fields
        if chat.type != "private" and not anonymous:
            self._members.setdefault((chat.id, user.id), user)
        message_id = self._allocate_message_id(chat.id)
        api: JsonDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat.to_api(),
            "from": dict(GROUP_ANONYMOUS_BOT) if anonymous else user.to_api(),
            **fields,
        }
        if reply_to is not None:
            target = self._messages.get((chat.id, reply_to.message_id))
            if target is None:
                raise ValueError(f"message {reply_to.message_id} is not in chat {chat.id}")
            api["reply_to_message"] = self._reply_api(target)
        message = StoredMessage(
            chat_id=chat.id,
            message_id=message_id,
            api=api,
            from_bot=False,
            photo=list(photo or []),
            document=document,
        )
        message.delivered = self._bot_sees(chat, message, reply_to)
        self._messages[(chat.id, message_id)] = message
        if message.delivered:
            await self._queue_update({"message": api})
        return message

    def _bot_sees(
        self, chat: FakeChat, message: StoredMessage, reply_to: StoredMessage | None
    ) -> bool:
        """Privacy mode: in groups a bot sees commands, replies to it and mentions only."""
        if not self.privacy_mode or chat.type == "private":
            return True
        api = message.api
        entities = api.get("entities", []) + api.get("caption_entities", [])
        if any(entity["type"] == "bot_command" for entity in entities):
            return True
        if reply_to is not None and reply_to.from_bot:
            return True
        body = api.get("text") or api.get("caption") or ""
        return f"@{self.bot.username}".lower() in body.lower()

    async def _queue_update(self, payload: JsonDict) -> None:
        assert self._updates_changed is not None, "FakeTelegram.start() has not been awaited"
        async with self._updates_changed:
            self._pending_updates.append({"update_id": self._next_update_id, **payload})
            self._next_update_id += 1
            self._updates_changed.notify_all()

    # -- internals: HTTP ---------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, dict[str, UploadedFile]]:
        params: JsonDict = {
            key: _decode_form_value(key, value) for key, value in request.query.items()
        }
        files: dict[str, UploadedFile] = {}
        if request.method != "POST" or not request.body_exists:
            return params, files
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
            return params, files
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge as exc:
            raise _too_large() from exc
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = UploadedFile(
                    field=key,
                    filename=value.filename,
                    content_type=value.content_type,
                    data=value.file.read(),
                )
            elif isinstance(value, bytes | bytearray):
                params[key] = _decode_form_value(key, bytes(value).decode("utf-8"))
            else:
                params[key] = _decode_form_value(key, str(value))
        return params, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if self._offline:
            _cut_off(request)
        params: JsonDict = {}
        files: dict[str, UploadedFile] = {}
        try:
            if request.match_info["token"] != self.token:
                raise TelegramApiError(401, "Unauthorized")
            try:
                params, files = await self._read_params(request)
            except ConnectionResetError:
                # The client went away mid-upload (a cancelled request at shutdown).
                _LOGGER.debug("%s: client disconnected while sending the request", method)
                return web.Response(status=400)
            if any(len(upload.data) > MAX_UPLOAD_BYTES for upload in files.values()):
                raise _too_large()
            self._check_flood(method)
            self._check_refusal(method)
            handler = self._handlers().get(method.lower())
            if handler is None:
                raise TelegramApiError(404, "Not Found")
            result = await handler(params, files)
            status, body = 200, {"ok": True, "result": result}
        except TelegramApiError as error:
            status, body = error.error_code, error.envelope()
        call = RecordedCall(method, params, files, status, body)
        self.requests.append(call)
        if method.lower() != "getupdates" or body.get("result"):
            _LOGGER.debug("%s(%s) -> %s", method, _summary(params), status)
        if self._activity is not None:
            async with self._activity:
                self._activity.notify_all()
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        if self._offline:
            _cut_off(request)
        if request.match_info["token"] != self.token:
            return web.json_response(TelegramApiError(401, "Unauthorized").envelope(), status=401)
        stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return web.json_response(TelegramApiError(404, "Not Found").envelope(), status=404)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    def _check_refusal(self, method: str) -> None:
        refusal = self._refusals.get(method.lower())
        if refusal is None:
            return
        if refusal.skip > 0:
            refusal.skip -= 1
            return
        del self._refusals[method.lower()]
        if refusal.retry_after is not None:
            raise TelegramApiError(429, refusal.description, {"retry_after": refusal.retry_after})
        raise _bad_request(refusal.description)

    def _check_flood(self, method: str) -> None:
        flood = self._floods.get(method.lower())
        if flood is None:
            return
        now = time.monotonic()
        if now < flood.blocked_until:
            wait = max(1, math.ceil(flood.blocked_until - now))
        elif flood.remaining > 0:
            flood.remaining -= 1
            flood.blocked_until = now + flood.retry_after
            wait = flood.retry_after
        else:
            del self._floods[method.lower()]
            return
        raise TelegramApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})

    def _handlers(
        self,
    ) -> dict[str, Callable[[JsonDict, dict[str, UploadedFile]], Any]]:
        return {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendmediagroup": self._send_media_group,
            "getfile": self._get_file,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendchataction": self._send_chat_action,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
        }

    # -- internals: Bot API methods ----------------------------------------------------------

    async def _true(self, _params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        return True

    async def _get_me(self, _params: JsonDict, _files: dict[str, UploadedFile]) -> JsonDict:
        return {
            **self.bot.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _delete_webhook(self, params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates"):
            assert self._updates_changed is not None
            async with self._updates_changed:
                self._pending_updates.clear()
        return True

    async def _get_webhook_info(
        self, _params: JsonDict, _files: dict[str, UploadedFile]
    ) -> JsonDict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def _get_updates(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> list[JsonDict]:
        """Long poll: answer as soon as an update at or after ``offset`` exists, or after
        ``timeout`` seconds with an empty list; a newer getUpdates terminates this one."""
        assert self._updates_changed is not None
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        allowed = params.get("allowed_updates") or None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._updates_changed:
            self._poll_generation += 1
            generation = self._poll_generation
            self._updates_changed.notify_all()  # terminate an older held poll
            if offset > 0:
                self._pending_updates = [
                    u for u in self._pending_updates if u["update_id"] >= offset
                ]
            elif offset < 0:
                self._pending_updates = self._pending_updates[offset:]
            while True:
                if self._closing or self._offline:
                    return []
                if generation != self._poll_generation:
                    raise TelegramApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
                ready = [
                    update
                    for update in self._pending_updates
                    if allowed is None or any(kind in update for kind in allowed)
                ]
                remaining = deadline - loop.time()
                if ready or remaining <= 0:
                    return ready[:limit]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._updates_changed.wait(), remaining)

    def _chat(self, params: JsonDict) -> FakeChat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, int) and chat_id in self._migrated:
            raise TelegramApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise _bad_request("chat not found")
        return chat

    def _check_markup(self, markup: Any) -> JsonDict | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not (
                    1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
                if not button.get("text"):
                    raise _bad_request("text buttons are unallowed in the inline keyboard")
        return markup

    def _reply_target(self, chat: FakeChat, params: JsonDict) -> StoredMessage | None:
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        if message_id is None:
            message_id = params.get("reply_to_message_id")
        if message_id is None:
            return None
        target = self._messages.get((chat.id, int(message_id)))
        if target is None or target.deleted:
            if isinstance(reply, dict) and reply.get("allow_sending_without_reply"):
                return None
            raise _bad_request("message to be replied not found")
        return target

    def _bot_message(
        self,
        chat: FakeChat,
        params: JsonDict,
        fields: JsonDict,
        *,
        uploads: Sequence[UploadedFile] = (),
        photo: list[StoredFile] | None = None,
        document: StoredFile | None = None,
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        markup = self._check_markup(params.get("reply_markup"))  # before an id is used up
        message_id = self._allocate_message_id(chat.id)
        api: JsonDict = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat.to_api(),
            "from": self.bot.to_api(),
            **fields,
        }
        if reply_to is not None:
            api["reply_to_message"] = self._reply_api(reply_to)
        if markup and "inline_keyboard" in markup:
            api["reply_markup"] = markup  # only inline keyboards are part of the message
        message = StoredMessage(
            chat_id=chat.id,
            message_id=message_id,
            api=api,
            from_bot=True,
            uploads=list(uploads),
            photo=list(photo or []),
            document=document,
        )
        if "text" in api:
            message.text_history.append(api["text"])
        self._messages[(chat.id, message_id)] = message
        return message

    def _caption_fields(self, caption: Any, parse_mode: Any, entities: Any) -> JsonDict:
        if not caption:
            return {}
        text, parsed = _apply_parse_mode(str(caption), parse_mode, entities)
        if len(text) > MAX_CAPTION_LENGTH:
            raise _bad_request("message caption is too long")
        fields: JsonDict = {"caption": text}
        if parsed:
            fields["caption_entities"] = parsed
        return fields

    def _text_fields(self, params: JsonDict) -> JsonDict:
        raw = params.get("text")
        if raw is None or str(raw).strip() == "":
            raise _bad_request("message text is empty")
        text, entities = _apply_parse_mode(
            str(raw), params.get("parse_mode"), params.get("entities")
        )
        if not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        fields: JsonDict = {"text": text}
        if entities:
            fields["entities"] = entities
        return fields

    async def _send_message(self, params: JsonDict, _files: dict[str, UploadedFile]) -> JsonDict:
        chat = self._chat(params)
        fields = self._text_fields(params)
        reply_to = self._reply_target(chat, params)
        return self._bot_message(chat, params, fields, reply_to=reply_to).api

    def _own_message(self, params: JsonDict, action: str) -> StoredMessage:
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the fake")
        chat = self._chat(params)
        message = self._messages.get((chat.id, int(params.get("message_id") or 0)))
        if message is None or message.deleted:
            raise _bad_request(f"message to {action} not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    @staticmethod
    def _not_modified() -> TelegramApiError:
        return _bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )

    def _apply_edit(
        self,
        message: StoredMessage,
        changes: JsonDict,
        markup: JsonDict | None,
        replaced: Sequence[str],
    ) -> None:
        """Apply an edit like Telegram: an edit without ``reply_markup`` drops the inline
        keyboard, and an edit that changes nothing is refused."""
        new_api = {
            key: value
            for key, value in message.api.items()
            if key != "reply_markup" and key not in replaced
        }
        new_api.update(changes)
        if markup and "inline_keyboard" in markup:
            new_api["reply_markup"] = markup
        comparable = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(new_api.get(key) == message.api.get(key) for key in comparable):
            raise self._not_modified()
        new_api["edit_date"] = int(time.time())
        message.api = new_api
        if "text" in changes:
            message.text_history.append(changes["text"])

    async def _edit_message_text(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> JsonDict:
        message = self._own_message(params, "edit")
        if "text" not in message.api:
            raise _bad_request("there is no text in the message to edit")
        fields = self._text_fields(params)
        markup = self._check_markup(params.get("reply_markup"))
        self._apply_edit(message, fields, markup, replaced=("text", "entities"))
        return message.api

    async def _edit_message_caption(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> JsonDict:
        message = self._own_message(params, "edit")
        if "text" in message.api:
            raise _bad_request("there is no caption in the message to edit")
        fields = self._caption_fields(
            params.get("caption"), params.get("parse_mode"), params.get("caption_entities")
        )
        markup = self._check_markup(params.get("reply_markup"))
        self._apply_edit(message, fields, markup, replaced=("caption", "caption_entities"))
        return message.api

    async def _edit_message_reply_markup(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> JsonDict:
        message = self._own_message(params, "edit")
        markup = self._check_markup(params.get("reply_markup"))
        self._apply_edit(message, {}, markup, replaced=())
        return message.api

    async def _delete_message(self, params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        chat = self._chat(params)
        message = self._messages.get((chat.id, int(params.get("message_id") or 0)))
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        return True

    def _input_file(
        self,
        value: Any,
        files: dict[str, UploadedFile],
        field_name: str,
    ) -> tuple[UploadedFile | None, StoredFile | None]:
        """An upload (multipart part, possibly via ``attach://``) or an existing file_id."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad_request(f"file for {value} is not found in the request")
            return upload, None
        if value is None or value == "":
            upload = files.get(field_name)
            if upload is None:
                raise _bad_request(f"there is no {field_name} in the request")
            return upload, None
        if isinstance(value, str) and value in self._files:
            return None, self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            raise _bad_request("failed to get HTTP URL content")
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _photo_sizes(
        self, upload: UploadedFile | None, existing: StoredFile | None
    ) -> list[StoredFile]:
        if upload is not None:
            if len(upload.data) > MAX_PHOTO_BYTES:
                raise _bad_request("PHOTO_SAVE_FILE_INVALID")
            return self._store_photo(upload.data)
        assert existing is not None
        # Re-sending a photo by file_id reuses its renditions.
        siblings = [
            message.photo
            for message in self._messages.values()
            if any(size.file_id == existing.file_id for size in message.photo)
        ]
        return siblings[0] if siblings else [existing]

    def _stored_document(
        self, upload: UploadedFile | None, existing: StoredFile | None
    ) -> tuple[StoredFile, str | None]:
        if upload is not None:
            filename = upload.filename
            stored = self._store_file(
                upload.data,
                folder="documents",
                filename=filename,
                mime=upload.content_type or "application/octet-stream",
            )
            return stored, filename
        assert existing is not None
        return existing, existing.file_path.rsplit("/", 1)[-1]

    async def _send_photo(self, params: JsonDict, files: dict[str, UploadedFile]) -> JsonDict:
        chat = self._chat(params)
        upload, existing = self._input_file(params.get("photo"), files, "photo")
        reply_to = self._reply_target(chat, params)
        fields = self._caption_fields(
            params.get("caption"), params.get("parse_mode"), params.get("caption_entities")
        )
        sizes = self._photo_sizes(upload, existing)
        fields = {"photo": [size.photo_size() for size in sizes], **fields}
        message = self._bot_message(
            chat,
            params,
            fields,
            uploads=[upload] if upload else [],
            photo=sizes,
            reply_to=reply_to,
        )
        return message.api

    async def _send_document(self, params: JsonDict, files: dict[str, UploadedFile]) -> JsonDict:
        chat = self._chat(params)
        upload, existing = self._input_file(params.get("document"), files, "document")
        reply_to = self._reply_target(chat, params)
        fields = self._caption_fields(
            params.get("caption"), params.get("parse_mode"), params.get("caption_entities")
        )
        stored, filename = self._stored_document(upload, existing)
        fields = {"document": self._document_api(stored, filename), **fields}
        message = self._bot_message(
            chat,
            params,
            fields,
            uploads=[upload] if upload else [],
            document=stored,
            reply_to=reply_to,
        )
        return message.api

    async def _send_media_group(
        self, params: JsonDict, files: dict[str, UploadedFile]
    ) -> list[JsonDict]:
        chat = self._chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad_request("media group must contain 2-10 items")
        kinds = {item.get("type") for item in media if isinstance(item, dict)}
        if "document" in kinds and kinds != {"document"}:
            raise _bad_request("document can't be mixed with other media types")
        if not kinds <= {"photo", "document"}:
            raise _bad_request(f"the fake supports photo and document albums, not {kinds}")
        reply_to = self._reply_target(chat, params)
        # Every item is checked (photos processed) before any is posted: Telegram
        # refuses an album with one bad item whole.
        prepared = []
        for item in media:
            upload, existing = self._input_file(item.get("media"), files, "media")
            caption = self._caption_fields(
                item.get("caption"), item.get("parse_mode"), item.get("caption_entities")
            )
            sizes = self._photo_sizes(upload, existing) if item["type"] == "photo" else []
            prepared.append((item["type"], upload, existing, caption, sizes))
        group_id = f"{int(time.time())}{next(self._media_group_counter):06d}"
        results = []
        for kind, upload, existing, caption, sizes in prepared:
            uploads = [upload] if upload else []
            fields: JsonDict = {"media_group_id": group_id, **caption}
            if kind == "photo":
                fields["photo"] = [size.photo_size() for size in sizes]
                message = self._bot_message(
                    chat, {}, fields, uploads=uploads, photo=sizes, reply_to=reply_to
                )
            else:
                stored, filename = self._stored_document(upload, existing)
                fields["document"] = self._document_api(stored, filename)
                message = self._bot_message(
                    chat, {}, fields, uploads=uploads, document=stored, reply_to=reply_to
                )
            results.append(message.api)
        return results

    async def _get_file(self, params: JsonDict, _files: dict[str, UploadedFile]) -> JsonDict:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise _bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _answer_callback_query(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> bool:
        query = self._callback_queries.get(str(params.get("callback_query_id") or ""))
        if query is None or query.answer is not None:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        query.answer = dict(params)
        return True

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope_dict = scope if isinstance(scope, dict) and scope else {"type": "default"}
        return json.dumps(scope_dict, sort_keys=True), str(language_code or "")

    async def _set_my_commands(self, params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        cleaned = []
        for command in commands:
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not _BOT_COMMAND_NAME_RE.match(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad_request("command description must be 1-256 characters")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = cleaned
        return True

    async def _get_my_commands(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> list[JsonDict]:
        return self.commands(params.get("scope"), str(params.get("language_code") or ""))

    async def _delete_my_commands(self, params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        self._commands.pop(
            self._commands_key(params.get("scope"), params.get("language_code")), None
        )
        return True

    async def _send_chat_action(self, params: JsonDict, _files: dict[str, UploadedFile]) -> bool:
        self._chat(params)
        action = params.get("action")
        allowed = {
            "typing",
            "upload_photo",
            "record_video",
            "upload_video",
            "record_voice",
            "upload_voice",
            "upload_document",
            "choose_sticker",
            "find_location",
            "record_video_note",
            "upload_video_note",
        }
        if action not in allowed:
            raise _bad_request("wrong parameter action in request")
        return True

    def _chat_member_api(self, chat: FakeChat, user: FakeUser, status: str) -> JsonDict:
        """The Bot API ``ChatMember`` object (the fields PTB requires for each status)."""
        member: JsonDict = {"status": status, "user": user.to_api()}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            rights = (
                "can_manage_chat can_delete_messages can_manage_video_chats can_restrict_members "
                "can_change_info can_invite_users can_pin_messages can_post_stories "
                "can_edit_stories can_delete_stories"
            )
            member.update({right: True for right in rights.split()})
            member.update(can_be_edited=False, is_anonymous=False, can_promote_members=False)
        elif status == "restricted":
            rights = (
                "can_send_messages can_send_audios can_send_documents can_send_photos "
                "can_send_videos can_send_video_notes can_send_voice_notes can_send_polls "
                "can_send_other_messages can_add_web_page_previews can_change_info "
                "can_invite_users can_pin_messages can_manage_topics"
            )
            member.update({right: False for right in rights.split()})
            member.update(is_member=True, until_date=0)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _group(self, params: JsonDict) -> FakeChat:
        chat = self._chat(params)
        if chat.type == "private":
            raise _bad_request("there are no administrators in the private chat")
        return chat

    async def _get_chat_member(self, params: JsonDict, _files: dict[str, UploadedFile]) -> JsonDict:
        chat = self._chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _bad_request(
                "user_id is empty" if user_id in (None, "") else "invalid user_id specified"
            )
        if chat.type == "private":
            if user_id not in (chat.id, self.bot.id):
                raise _bad_request("user not found")
            user = self.bot if user_id == self.bot.id else FakeUser(user_id, chat.first_name or "")
            return self._chat_member_api(chat, user, "member")
        if user_id == self.bot.id:
            return self._chat_member_api(chat, self.bot, "member")
        member = self._members.get((chat.id, user_id))
        if member is None:
            raise _bad_request("user not found")
        status = self._member_status.get((chat.id, user_id), "member")
        return self._chat_member_api(chat, member, status)

    async def _get_chat_administrators(
        self, params: JsonDict, _files: dict[str, UploadedFile]
    ) -> list[JsonDict]:
        chat = self._group(params)
        return [
            self._chat_member_api(chat, self._members[key], status)
            for key, status in self._member_status.items()
            if key[0] == chat.id and status in ("creator", "administrator")
        ]


def _summary(params: Mapping[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        text = repr(value)
        parts.append(f"{key}={text[:60]}{'…' if len(text) > 60 else ''}")
    return ", ".join(parts)
