"""A small fake Discord (REST + gateway) on 127.0.0.1 for end-to-end tests.

Why this exists: our tests run the *real* discord.py client, and nothing here
reaches discord.com. So this module speaks enough of Discord's HTTP API
(``/api/v10``) and gateway protocol (HELLO, IDENTIFY, READY, GUILD_CREATE,
heartbeats, RESUME, dispatches) that an unmodified ``discord.Client`` with an
``app_commands.CommandTree`` logs in, syncs commands, receives interactions,
responds, sends follow-ups with files and downloads attachments from it.

It also behaves like Discord where bots commonly get things wrong, so those
bugs show up in tests rather than in production:

* an interaction must be acknowledged within ``callback_deadline`` seconds
  (3 s on Discord) or the callback fails with 404 / 10062 Unknown interaction;
* an interaction can be acknowledged once (400 / 40060 otherwise);
* follow-ups need an acknowledged interaction and a live token; tokens expire
  after ``interaction_token_ttl`` seconds (15 min on Discord) or at once through
  :meth:`FakeDiscord.expire_token`, then webhook calls fail with 404 / 10015
  Unknown Webhook;
* interactions can only be sent for commands the bot registered (``strict``),
  with option names the registration declares;
* deleted channels answer 404 / 10003, users with closed DMs 403 / 50007;
* the files of one message are at most 10 and 10 MiB together (413 / 40005 Request
  entity too large over the size, 400 / 50035 over the count);
* message content is limited to 2000 characters and must not be empty; embeds,
  components (custom_ids of at most 100 characters, five rows...), modals and
  autocomplete choices have Discord's limits too (see tests/fakes/discord_limits.py);
* JSON responses carry exactly ``Content-Type: application/json`` (discord.py
  only parses JSON then).

Waiting helpers take ``timeout=`` (ruff's ASYNC109 is silenced for them): a
deadline argument reads better in tests than wrapping each call in a timeout.

Every HTTP request is recorded (:attr:`FakeDiscord.requests`) with its JSON
body and uploaded files' bytes, so tests assert on what the bot really sent.

Typical use::

    fake = FakeDiscord(guilds=[FakeGuild(name="g", channels=[FakeChannel(name="general")],
                                         members=[alice])])
    await fake.start()
    fake.patch_discord()
    ...  # start the real client with fake.token
    await fake.wait_ready()
    sent = await fake.send_slash_command(guild.id, channel.id, alice, "imagine",
                                         options={"prompt": "a cat",
                                                  "image": FakeFile("a.png", data)})
    callback = await sent.callback()
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import mimetypes
import os
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes import discord_limits

__all__ = [
    "DISCORD_EPOCH_MS",
    "FakeChannel",
    "FakeDiscord",
    "FakeFile",
    "FakeGuild",
    "FakeRole",
    "FakeUser",
    "InjectedError",
    "RecordedFile",
    "RecordedRequest",
    "SentInteraction",
    "snowflake",
]

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway-ws"

# Gateway opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

# Intents the fake honours when deciding what to dispatch.
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

# Message flags.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

# Interaction types and callback types.
IT_APPLICATION_COMMAND = 2
IT_COMPONENT = 3
IT_AUTOCOMPLETE = 4
IT_MODAL_SUBMIT = 5
CB_CHANNEL_MESSAGE = 4
CB_DEFERRED_CHANNEL_MESSAGE = 5
CB_DEFERRED_UPDATE = 6
CB_UPDATE_MESSAGE = 7
CB_AUTOCOMPLETE = 8
CB_MODAL = 9

ATTACHMENT_SIZE_LIMIT = discord_limits.ATTACHMENTS_TOTAL_BYTES

DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    read_message_history=True,
    use_application_commands=True,
    use_external_emojis=True,
).value
DEFAULT_BOT_PERMISSIONS = (
    DEFAULT_EVERYONE_PERMISSIONS
    | discord.Permissions(manage_messages=True, create_public_threads=True).value
)
ALL_PERMISSIONS = discord.Permissions.all().value

_sequence = itertools.count()


def snowflake() -> int:
    """Return a new, unique, time-ordered snowflake (so ``created_at`` is sane)."""
    ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
    return (ms << 22) | (next(_sequence) % (1 << 22))


def _iso(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).isoformat()


# --------------------------------------------------------------------------- model


@dataclass
class FakeUser:
    """A Discord user. ``accepts_dms=False`` makes DMs fail with 403 / 50007."""

    username: str = "user"
    id: int = field(default_factory=snowflake)
    bot: bool = False
    global_name: str | None = None
    locale: str = "en-US"
    accepts_dms: bool = True

    def payload(self) -> dict[str, Any]:
        """The user object as Discord sends it."""
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class FakeRole:
    """A guild role; ``permissions`` is a permission bit field."""

    name: str = "role"
    id: int = field(default_factory=snowflake)
    permissions: int = 0
    position: int = 1
    managed: bool = False
    tags: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        """The role object as Discord sends it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.tags is not None:
            data["tags"] = self.tags
        return data


@dataclass
class FakeChannel:
    """A guild channel (type 0 text by default, 4 category, 2 voice...)."""

    name: str = "general"
    id: int = field(default_factory=snowflake)
    type: int = 0
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False

    def payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """The channel object; ``guild_id`` is added for REST and interactions."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "flags": 0,
        }
        if self.type in (0, 5):
            data.update(topic=self.topic, last_message_id=None, rate_limit_per_user=0)
        if self.type in (2, 13):
            data.update(bitrate=64000, user_limit=0, rtc_region=None)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data


@dataclass
class FakeGuild:
    """A guild with its channels, members and roles.

    ``member_roles`` maps a member's user id to the ids of its extra roles; the
    ``@everyone`` role (id == guild id) is added automatically with
    ``everyone_permissions``.  ``owner_id`` defaults to the first member.
    """

    name: str = "guild"
    id: int = field(default_factory=snowflake)
    channels: list[FakeChannel] = field(default_factory=list)
    members: list[FakeUser] = field(default_factory=list)
    roles: list[FakeRole] = field(default_factory=list)
    member_roles: dict[int, list[int]] = field(default_factory=dict)
    owner_id: int | None = None
    everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS
    joined_at: str = field(default_factory=_iso)

    def everyone(self) -> FakeRole:
        """The ``@everyone`` role (created on first use)."""
        for role in self.roles:
            if role.id == self.id:
                return role
        role = FakeRole(
            name="@everyone", id=self.id, permissions=self.everyone_permissions, position=0
        )
        self.roles.insert(0, role)
        return role

    def channel(self, channel_id: int) -> FakeChannel | None:
        """The channel with this id, if it is in this guild."""
        return next((c for c in self.channels if c.id == channel_id), None)

    def member(self, user_id: int) -> FakeUser | None:
        """The member with this user id, if any."""
        return next((m for m in self.members if m.id == user_id), None)

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions: owner and administrators get everything."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        value = self.everyone().permissions
        wanted = set(self.member_roles.get(user_id, []))
        for role in self.roles:
            if role.id in wanted:
                value |= role.permissions
        if value & discord.Permissions(administrator=True).value:
            return ALL_PERMISSIONS
        return value

    def member_payload(self, user: FakeUser, *, with_user: bool = True) -> dict[str, Any]:
        """The guild member object (``with_user=False`` for ``resolved.members``)."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.member_roles.get(user.id, [])],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = user.payload()
        return data


@dataclass
class FakeFile:
    """A file a user uploads (slash command attachment option or message)."""

    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class RecordedFile:
    """One file part of a multipart request (``files[n]``), bytes included."""

    field: str
    filename: str
    content_type: str
    data: bytes


# Per-request storage: the parsed body and files, and the JSON answered (for recording).
_BODY: web.RequestKey[Any] = web.RequestKey("fake_discord_body")
_FILES: web.RequestKey[list[RecordedFile]] = web.RequestKey("fake_discord_files")
_RESPONSE: web.RequestKey[Any] = web.RequestKey("fake_discord_response")


@dataclass
class RecordedRequest:
    """One HTTP request the fake answered.

    ``path`` is relative to ``/api/v10`` for API calls (``/channels/1/messages``)
    and the full path otherwise (``/attachments/...``).  ``json`` is the JSON
    body, or ``payload_json`` of a multipart body.  ``response`` is the JSON the
    fake answered with (``None`` for 204).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[RecordedFile]
    status: int
    response: Any


@dataclass
class InjectedError:
    """An error the fake returns instead of handling matching requests."""

    method: str
    path_prefix: str
    status: int
    code: int
    message: str
    times: int = 1


@dataclass
class HeldRequests:
    """Requests the fake holds unanswered until ``release()`` (a slow CDN, say)."""

    method: str
    path_prefix: str
    held: int = 0  # matching requests that arrived (and waited, until released)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class _ApiError(Exception):
    """Raised by handlers; turned into a Discord-style JSON error."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message


def _unknown(what: str, code: int) -> _ApiError:
    return _ApiError(404, code, f"Unknown {what}")


@dataclass
class _InteractionState:
    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user: FakeUser
    created: float
    payload: dict[str, Any]
    acknowledged: bool = False
    original_message_id: int | None = None
    modal: dict[str, Any] | None = None
    expired: bool = False


@dataclass
class SentInteraction:
    """An interaction the fake delivered to the bot, with helpers to await the answer."""

    id: int
    token: str
    payload: dict[str, Any]
    fake: FakeDiscord = field(repr=False)

    async def callback(self, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109
        """The bot's interaction callback (defer, message, autocomplete result...)."""
        return await self.fake.wait_for(
            lambda r: (
                r.method == "POST" and r.path == f"/interactions/{self.id}/{self.token}/callback"
            ),
            timeout=timeout,
        )

    async def followup(self, index: int = 0, timeout: float = 5.0) -> RecordedRequest:  # noqa: ASYNC109
        """The ``index``-th successful follow-up message the bot sent for this interaction."""
        path = f"/webhooks/{self.fake.application_id}/{self.token}"

        def match(r: RecordedRequest) -> bool:
            return r.method == "POST" and r.path == path and r.status < 300

        await self.fake.wait_until(
            lambda: sum(1 for r in self.fake.requests if match(r)) > index,
            timeout=timeout,
            what=f"follow-up #{index} for interaction {self.id}",
        )
        return [r for r in self.fake.requests if match(r)][index]

    def original_message(self) -> dict[str, Any] | None:
        """The original response message as the fake stores it now, if any."""
        state = self.fake._interactions.get(self.id)
        if state is None or state.original_message_id is None:
            return None
        return self.fake.messages.get(state.original_message_id)

    def modal(self) -> dict[str, Any] | None:
        """The modal the bot answered with (callback type 9), if any."""
        state = self.fake._interactions.get(self.id)
        return None if state is None else state.modal


class _Session:
    """A gateway session: survives disconnects until invalidated, replays on RESUME."""

    def __init__(self, session_id: str, token: str, shard: tuple[int, int], intents: int) -> None:
        self.id = session_id
        self.token = token
        self.shard = shard
        self.intents = intents
        self.seq = 0
        self.buffer: list[dict[str, Any]] = []
        self.ws: web.WebSocketResponse | None = None
        self.ready = False
        self.lock = asyncio.Lock()

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(frame))

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a DISPATCH; kept for replay if the socket is gone."""
        async with self.lock:
            self.seq += 1
            frame = {"op": OP_DISPATCH, "t": event, "s": self.seq, "d": data}
            self.buffer.append(frame)
            del self.buffer[:-2000]
            await self._send(frame)

    async def send_op(self, op: int, data: Any) -> None:
        """Send a non-dispatch opcode (HEARTBEAT_ACK, INVALID_SESSION...)."""
        async with self.lock:
            await self._send({"op": op, "d": data, "s": None, "t": None})

    async def resume(self, ws: web.WebSocketResponse, seq: int) -> None:
        """Attach a new socket, replay what it missed, then send RESUMED."""
        async with self.lock:
            self.ws = ws
            for frame in self.buffer:
                if frame["s"] > seq:
                    await self._send(frame)
            self.seq += 1
            frame = {"op": OP_DISPATCH, "t": "RESUMED", "s": self.seq, "d": {}}
            self.buffer.append(frame)
            await self._send(frame)


def _json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses a body as JSON only for exactly "application/json".
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _walk_components(components: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for component in components:
        yield component
        yield from _walk_components(component.get("components", []))
        inner = component.get("component")
        if isinstance(inner, Mapping):
            yield from _walk_components([inner])
        accessory = component.get("accessory")
        if isinstance(accessory, Mapping):
            yield from _walk_components([accessory])


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height when the bytes are an image Pillow can read, else ``None``s."""
    try:
        from PIL import Image  # a project dependency; optional for the fake

        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height
    except Exception:
        return None, None


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """Discord's REST API and gateway for one bot application, on 127.0.0.1.

    Parameters
    ----------
    guilds:
        Guilds the bot is in. The bot user is added to each as a member with a
        managed role carrying ``bot_permissions``.
    users:
        Extra users (e.g. only met in DMs). Users passed to ``send_*`` are
        registered automatically.
    strict:
        Refuse to send interactions for commands the bot has not synced, or
        with options the synced command does not declare (Discord cannot).
    callback_deadline / interaction_token_ttl:
        Seconds until an interaction can no longer be acknowledged (3 on
        Discord) and until its token dies (900 on Discord). ``None`` disables.
    """

    def __init__(
        self,
        *,
        guilds: Iterable[FakeGuild] = (),
        users: Iterable[FakeUser] = (),
        bot_user: FakeUser | None = None,
        application_id: int | None = None,
        token: str = "fake-bot-token",
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        strict: bool = True,
        callback_deadline: float | None = 3.0,
        interaction_token_ttl: float | None = 900.0,
        heartbeat_interval_ms: int = 41250,
    ) -> None:
        self.bot_user = bot_user or FakeUser(username="stylebot", bot=True)
        self.application_id = application_id or self.bot_user.id
        self.token = token
        self.strict = strict
        self.callback_deadline = callback_deadline
        self.interaction_token_ttl = interaction_token_ttl
        self.heartbeat_interval_ms = heartbeat_interval_ms

        self.guilds: dict[int, FakeGuild] = {}
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        for guild in guilds:
            self.add_guild(guild, bot_permissions=bot_permissions)
        for user in users:
            self.users[user.id] = user

        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.gateway_received: list[dict[str, Any]] = []
        self.dispatched: list[tuple[str, Any]] = []
        self.messages: dict[int, dict[str, Any]] = {}
        self.global_commands: dict[int, dict[str, Any]] = {}
        self.guild_commands: dict[int, dict[int, dict[str, Any]]] = {}
        self.deleted_channels: set[int] = set()
        self.identify_count = 0
        self.resume_count = 0
        self.errors: list[InjectedError] = []
        self.holds: list[HeldRequests] = []

        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self._blobs: dict[int, tuple[str, str, bytes]] = {}  # attachment id -> file
        self._interactions: dict[int, _InteractionState] = {}
        self._by_token: dict[str, _InteractionState] = {}
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._server_closed: set[int] = set()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._unpatch: Callable[[], None] | None = None
        self._saved_no_proxy: tuple[str | None, str | None] | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``discord.http.Route.BASE`` must be."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The websocket URL (also READY's ``resume_gateway_url``)."""
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"

    async def start(self) -> None:
        """Listen on a random port of 127.0.0.1 and keep it out of any proxy."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        # discord.py's session ignores proxy variables, but other clients in a
        # test (aiohttp with trust_env, httpx) must not send 127.0.0.1 to a proxy.
        self._saved_no_proxy = (os.environ.get("NO_PROXY"), os.environ.get("no_proxy"))
        for name in ("NO_PROXY", "no_proxy"):
            current = os.environ.get(name)
            os.environ[name] = (
                f"{current},127.0.0.1,localhost" if current else "127.0.0.1,localhost"
            )

    async def stop(self) -> None:
        """Close sockets, stop the server, undo :meth:`patch_discord` and env changes."""
        for ws in list(self._sockets):
            self._server_closed.add(id(ws))
            with contextlib.suppress(Exception):
                await ws.close(code=1001)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.unpatch_discord()
        if self._saved_no_proxy is not None:
            for name, value in zip(("NO_PROXY", "no_proxy"), self._saved_no_proxy, strict=True):
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._saved_no_proxy = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        self.patch_discord()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def patch_discord(self) -> Callable[[], None]:
        """Point discord.py's REST base and default gateway at the fake.

        Both are needed: REST goes through ``Route.BASE``, while a plain Client
        connects to the hard-coded ``DiscordWebSocket.DEFAULT_GATEWAY`` (resumes
        then use READY's ``resume_gateway_url``). Returns the undo function,
        which :meth:`stop` also calls.
        """
        self.unpatch_discord()
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

        def undo() -> None:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

        self._unpatch = undo
        return undo

    def unpatch_discord(self) -> None:
        """Restore discord.py's real URLs (idempotent)."""
        if self._unpatch is not None:
            self._unpatch()
            self._unpatch = None

    # ------------------------------------------------------------------ setup helpers

    def add_guild(
        self, guild: FakeGuild, *, bot_permissions: int = DEFAULT_BOT_PERMISSIONS
    ) -> FakeGuild:
        """Register a guild (before the client connects) and put the bot in it."""
        guild.everyone()
        if guild.owner_id is None:
            humans = [m for m in guild.members if not m.bot]
            guild.owner_id = humans[0].id if humans else snowflake()
        if guild.member(self.bot_user.id) is None:
            guild.members.append(self.bot_user)
        if not guild.member_roles.get(self.bot_user.id):
            role = FakeRole(
                name=self.bot_user.username,
                permissions=bot_permissions,
                managed=True,
                tags={"bot_id": str(self.bot_user.id)},
            )
            guild.roles.append(role)
            guild.member_roles[self.bot_user.id] = [role.id]
        for member in guild.members:
            self.users.setdefault(member.id, member)
        self.guilds[guild.id] = guild
        return guild

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel silently: later REST calls on it get 404 / 10003.

        No CHANNEL_DELETE is dispatched (use :meth:`dispatch` for that), so the
        bot's cache still holds the channel, as after a missed event.
        """
        self.deleted_channels.add(channel_id)

    def expire_token(self, token: str) -> None:
        """Kill an interaction token now, as Discord does after 15 minutes."""
        state = self._by_token.get(token)
        if state is None:
            raise KeyError(f"unknown interaction token {token!r}")
        state.expired = True

    def inject_error(
        self, method: str, path_prefix: str, status: int, code: int, message: str, times: int = 1
    ) -> InjectedError:
        """Answer the next ``times`` matching API requests with an error instead."""
        error = InjectedError(method.upper(), path_prefix, status, code, message, times)
        self.errors.append(error)
        return error

    def hold(self, method: str, path_prefix: str) -> HeldRequests:
        """Hold matching API requests unanswered until the returned object is released."""
        held = HeldRequests(method.upper(), path_prefix)
        self.holds.append(held)
        return held

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Registered commands: global, or of one guild."""
        store = self.global_commands if guild_id is None else self.guild_commands.get(guild_id, {})
        return list(store.values())

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages in a channel, oldest first (ephemeral ones included)."""
        return [m for m in self.messages.values() if int(m["channel_id"]) == channel_id]

    def attachment_bytes(self, attachment_id: int) -> bytes:
        """The bytes of a stored attachment."""
        return self._blobs[attachment_id][2]

    def dm_channel_id(self, user: FakeUser) -> int:
        """The DM channel between the bot and ``user`` (created on first use)."""
        self.users.setdefault(user.id, user)
        if user.id not in self._dm_channels:
            self._dm_channels[user.id] = snowflake()
        return self._dm_channels[user.id]

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:  # noqa: ASYNC109
        """Wait until ``condition()`` holds (rechecked on every request or gateway change)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                recent = "\n  ".join(
                    f"{r.method} {r.path} -> {r.status}" for r in self.requests[-15:]
                )
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; last requests:\n  {recent}"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    async def wait_for(
        self,
        predicate: Callable[[RecordedRequest], bool],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        start: int = 0,
    ) -> RecordedRequest:
        """The first recorded request (from index ``start``) matching ``predicate``."""
        found: list[RecordedRequest] = []

        def check() -> bool:
            found[:] = [r for r in self.requests[start:] if predicate(r)][:1]
            return bool(found)

        await self.wait_until(check, timeout=timeout, what="a matching request")
        return found[0]

    async def wait_ready(self, *, identifies: int = 1, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until ``identifies`` IDENTIFYs in total got READY and all GUILD_CREATEs."""
        await self.wait_until(
            lambda: (
                self.identify_count >= identifies and any(s.ready for s in self._sessions.values())
            ),
            timeout=timeout,
            what=f"gateway IDENTIFY #{identifies}",
        )

    # ------------------------------------------------------------------ gateway

    async def dispatch(
        self,
        event: str,
        data: Any,
        *,
        wait: bool = True,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Send a gateway DISPATCH to every ready session.

        With ``wait`` it first waits for a ready session (e.g. while a new client
        is starting); events for a session that is reconnecting are replayed
        when it resumes, as on Discord.
        """
        if wait:
            await self.wait_until(
                lambda: any(s.ready for s in self._sessions.values()),
                timeout=timeout,
                what="a ready gateway session",
            )
        self.dispatched.append((event, data))
        for session in list(self._sessions.values()):
            if session.ready:
                await session.dispatch(event, data)

    async def restart_gateway(self, *, resume: bool = True, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Drop every gateway connection and wait for the client to come back.

        With ``resume`` the sessions survive and the client RESUMEs (missed
        events are replayed); without, sessions are invalidated, RESUME gets
        INVALID_SESSION and the client IDENTIFYs again.
        """
        resumes, identifies = self.resume_count, self.identify_count
        if not resume:
            self._sessions.clear()
        for ws in list(self._sockets):
            self._server_closed.add(id(ws))
            await ws.close(code=4000, message=b"fake gateway restart")
        if resume:
            await self.wait_until(
                lambda: self.resume_count > resumes, timeout=timeout, what="the client to RESUME"
            )
        else:
            await self.wait_ready(identifies=identifies + 1, timeout=timeout)

    def _ready_payload(self, session: _Session) -> dict[str, Any]:
        return {
            "v": 10,
            "user": {**self.bot_user.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self._shard_guilds(session)],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "shard": list(session.shard),
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
        }

    def _shard_guilds(self, session: _Session) -> list[FakeGuild]:
        shard_id, count = session.shard
        return [g for g in self.guilds.values() if (g.id >> 22) % count == shard_id]

    def guild_create_payload(self, guild: FakeGuild, *, intents: int) -> dict[str, Any]:
        """GUILD_CREATE; like Discord, other members only with the members intent."""
        members = guild.members if intents & INTENT_GUILD_MEMBERS else [self.bot_user]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "region": "us-west",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "roles": [r.payload() for r in guild.roles],
            "emojis": [],
            "stickers": [],
            "channels": [c.payload() for c in guild.channels if c.id not in self.deleted_channels],
            "threads": [],
            "members": [guild.member_payload(m) for m in members],
            "member_count": len(guild.members),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "lazy": True,
            "joined_at": guild.joined_at,
        }

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: _Session | None = None
        try:
            await ws.send_str(
                json.dumps(
                    {
                        "op": OP_HELLO,
                        "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                        "s": None,
                        "t": None,
                    }
                )
            )
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                payload = json.loads(msg.data)
                self.gateway_received.append(payload)
                op, data = payload.get("op"), payload.get("d")
                if op == OP_HEARTBEAT:
                    if session is not None:
                        await session.send_op(OP_HEARTBEAT_ACK, None)
                    else:
                        await ws.send_str(json.dumps({"op": OP_HEARTBEAT_ACK, "d": None}))
                elif op == OP_IDENTIFY:
                    session = await self._identify(ws, data)
                elif op == OP_RESUME:
                    session = await self._resume(ws, data)
                elif op == OP_REQUEST_MEMBERS and session is not None:
                    await self._request_members(session, data)
                self._notify()
        finally:
            self._sockets.discard(ws)
            by_server = id(ws) in self._server_closed
            self._server_closed.discard(id(ws))
            if session is not None and session.ws is ws:
                session.ws = None
                # A client closing with 1000/1001 ends its session (as on Discord).
                if not by_server and ws.close_code in (1000, 1001):
                    self._sessions.pop(session.id, None)
            self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        if data.get("token") != self.token:
            self._server_closed.add(id(ws))
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard = data.get("shard") or [0, 1]
        session = _Session(
            secrets.token_hex(16),
            self.token,
            (int(shard[0]), int(shard[1])),
            int(data.get("intents", 0)),
        )
        session.ws = ws
        self._sessions[session.id] = session
        await session.dispatch("READY", self._ready_payload(session))
        for guild in self._shard_guilds(session):
            await session.dispatch(
                "GUILD_CREATE", self.guild_create_payload(guild, intents=session.intents)
            )
        session.ready = True
        self.identify_count += 1
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        session = self._sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != session.token:
            await ws.send_str(
                json.dumps({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            )
            return None
        await session.resume(ws, int(data.get("seq") or 0))
        self.resume_count += 1
        return session

    async def _request_members(self, session: _Session, data: dict[str, Any]) -> None:
        guild = self.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = str(data.get("query") or "").lower()
        members = [
            m
            for m in guild.members
            if (not wanted or m.id in wanted) and m.username.lower().startswith(query)
        ]
        chunk = {
            "guild_id": str(guild.id),
            "members": [guild.member_payload(m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ interactions (sending)

    def _register_user(self, user: FakeUser) -> None:
        self.users.setdefault(user.id, user)

    def _find_command(
        self, name: str, cmd_type: int, guild_id: int | None
    ) -> dict[str, Any] | None:
        if guild_id is not None:
            for command in self.guild_commands.get(guild_id, {}).values():
                if command["name"] == name and command.get("type", 1) == cmd_type:
                    return command
        for command in self.global_commands.values():
            if command["name"] == name and command.get("type", 1) == cmd_type:
                return command
        return None

    def _context(
        self, guild_id: int | None, channel_id: int | None, user: FakeUser
    ) -> tuple[int, FakeGuild | None]:
        self._register_user(user)
        if guild_id is None:
            return self.dm_channel_id(user), None
        guild = self.guilds[guild_id]
        if channel_id is None or guild.channel(channel_id) is None:
            raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
        return channel_id, guild

    def _channel_payload_for(
        self, channel_id: int, guild: FakeGuild | None, user: FakeUser
    ) -> dict[str, Any]:
        if guild is None:
            return self._dm_payload(user, channel_id)
        channel = guild.channel(channel_id)
        assert channel is not None
        data = channel.payload(guild.id)
        data["permissions"] = str(guild.permissions_of(user.id))
        return data

    def _dm_payload(self, user: FakeUser, channel_id: int) -> dict[str, Any]:
        return {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [user.payload()],
        }

    async def _send_interaction(
        self,
        itype: int,
        *,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        data: dict[str, Any],
        message: dict[str, Any] | None = None,
    ) -> SentInteraction:
        channel_id, guild = self._context(guild_id, channel_id, user)
        interaction_id = snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "channel_id": str(channel_id),
            "channel": self._channel_payload_for(channel_id, guild, user),
            "token": token,
            "version": 1,
            "locale": user.locale,
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if guild is not None:
            member = guild.member_payload(user)
            member["permissions"] = str(guild.permissions_of(user.id))
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member=member,
                app_permissions=str(guild.permissions_of(self.bot_user.id)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            payload.update(
                user=user.payload(),
                app_permissions=str(DEFAULT_BOT_PERMISSIONS),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        if message is not None:
            payload["message"] = message
        state = _InteractionState(
            id=interaction_id,
            token=token,
            type=itype,
            guild_id=guild.id if guild else None,
            channel_id=channel_id,
            user=user,
            created=time.monotonic(),
            payload=payload,
        )
        self._interactions[interaction_id] = state
        self._by_token[token] = state
        await self.dispatch("INTERACTION_CREATE", payload)
        return SentInteraction(interaction_id, token, payload, self)

    def _command_data(
        self,
        name: str,
        cmd_type: int,
        guild_id: int | None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        command = self._find_command(name, cmd_type, guild_id)
        if command is None and self.strict:
            scopes = [None, guild_id] if guild_id is not None else [None]
            known = sorted({c["name"] for scope in scopes for c in self.commands(scope)})
            raise LookupError(
                f"command {name!r} (type {cmd_type}) is not registered; synced: {known}"
            )
        data: dict[str, Any] = {
            "id": str(command["id"]) if command else str(snowflake()),
            "name": name,
            "type": cmd_type,
        }
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        data.update(extra or {})
        return data, command

    async def send_slash_command(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        focused: str | None = None,
    ) -> SentInteraction:
        """Invoke a slash command as ``user``; ``guild_id=None`` means in DMs.

        ``name`` may be ``"cmd sub"`` or ``"cmd group sub"``.  Option values:
        ``str``/``int``/``float``/``bool``, :class:`FakeFile` (attachment,
        served by the fake), :class:`FakeUser`, :class:`FakeRole`,
        :class:`FakeChannel`.  Types come from the synced command when known.
        """
        return await self._application_command(
            IT_APPLICATION_COMMAND, guild_id, channel_id, user, name, options or {}, focused=focused
        )

    async def send_autocomplete(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        name: str,
        options: Mapping[str, Any],
        focused: str,
    ) -> SentInteraction:
        """Ask for autocomplete choices while ``user`` types option ``focused``."""
        return await self._application_command(
            IT_AUTOCOMPLETE, guild_id, channel_id, user, name, options, focused=focused
        )

    async def _application_command(
        self,
        itype: int,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        name: str,
        options: Mapping[str, Any],
        *,
        focused: str | None,
    ) -> SentInteraction:
        channel_id, guild = self._context(guild_id, channel_id, user)
        root, *path = name.split()
        data, command = self._command_data(root, 1, guild_id)
        definitions: list[dict[str, Any]] | None = command.get("options", []) if command else None
        for part in path:
            # Follow "cmd group sub" down the synced definition to the leaf options.
            sub = next(
                (d for d in definitions or [] if d["name"] == part and d.get("type") in (1, 2)),
                None,
            )
            if sub is None and command is not None and self.strict:
                raise LookupError(f"{root!r} has no subcommand {part!r} in its synced definition")
            definitions = sub.get("options", []) if sub is not None else None
        resolved: dict[str, dict[str, Any]] = {}
        built = self._build_options(
            options, definitions, guild, channel_id, resolved, focused, itype
        )
        for part in reversed(path):
            # Wrap innermost first: "cmd group sub" -> group(2) -> sub(1) -> options.
            built = [{"name": part, "type": 1, "options": built}]
        if len(path) == 2:
            built[0]["type"] = 2
        data["options"] = built
        if resolved:
            data["resolved"] = resolved
        return await self._send_interaction(
            itype, guild_id=guild_id, channel_id=channel_id, user=user, data=data
        )

    def _build_options(
        self,
        options: Mapping[str, Any],
        definitions: list[dict[str, Any]] | None,
        guild: FakeGuild | None,
        channel_id: int,
        resolved: dict[str, dict[str, Any]],
        focused: str | None,
        itype: int,
    ) -> list[dict[str, Any]]:
        leaf_defs = self._leaf_definitions(definitions)
        if leaf_defs is not None and itype == IT_APPLICATION_COMMAND:
            unknown = set(options) - {d["name"] for d in leaf_defs}
            missing = {d["name"] for d in leaf_defs if d.get("required")} - set(options)
            if unknown or missing:
                raise ValueError(
                    f"options do not match the synced command: unknown={unknown}, missing={missing}"
                )
        built: list[dict[str, Any]] = []
        for opt_name, value in options.items():
            definition = next((d for d in leaf_defs or [] if d["name"] == opt_name), None)
            opt_type = definition["type"] if definition else self._infer_type(value)
            entry: dict[str, Any] = {
                "name": opt_name,
                "type": opt_type,
                "value": self._option_value(opt_type, value, guild, channel_id, resolved),
            }
            if focused == opt_name:
                entry["focused"] = True
            built.append(entry)
        return built

    def _leaf_definitions(
        self, definitions: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """Option definitions of the command, or ``None`` (unknown / has subcommands)."""
        if definitions is None or any(d.get("type") in (1, 2) for d in definitions):
            return None
        return definitions

    @staticmethod
    def _infer_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        if isinstance(value, FakeFile):
            return 11
        if isinstance(value, FakeUser):
            return 6
        if isinstance(value, FakeChannel):
            return 7
        if isinstance(value, FakeRole):
            return 8
        return 3

    def _option_value(
        self,
        opt_type: int,
        value: Any,
        guild: FakeGuild | None,
        channel_id: int,
        resolved: dict[str, dict[str, Any]],
    ) -> Any:
        if opt_type == 11:
            if not isinstance(value, FakeFile):
                raise TypeError("attachment options take a FakeFile")
            attachment = self._store_attachment(
                channel_id, value.filename, value.data, value.content_type
            )
            attachment["ephemeral"] = True
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        if opt_type in (6, 9) and isinstance(value, FakeUser | int) and not isinstance(value, bool):
            user = value if isinstance(value, FakeUser) else self.users[value]
            self._register_user(user)
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if guild is not None and guild.member(user.id) is not None:
                member = guild.member_payload(user, with_user=False)
                member["permissions"] = str(guild.permissions_of(user.id))
                resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if opt_type in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if opt_type == 7 and isinstance(value, FakeChannel):
            data = value.payload(guild.id if guild else None)
            data["permissions"] = str(ALL_PERMISSIONS)
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if opt_type == 4:
            return int(value)
        if opt_type == 10:
            return float(value)
        if opt_type == 5:
            return bool(value)
        return value if opt_type != 3 else str(value)

    async def send_message_command(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        name: str,
        target: int | Mapping[str, Any],
    ) -> SentInteraction:
        """Run a message context-menu command (type 3) on a stored or given message."""
        message = self._message_arg(target)
        data, _ = self._command_data(
            name,
            3,
            guild_id,
            extra={"target_id": message["id"], "resolved": {"messages": {message["id"]: message}}},
        )
        return await self._send_interaction(
            IT_APPLICATION_COMMAND, guild_id=guild_id, channel_id=channel_id, user=user, data=data
        )

    async def send_user_command(
        self,
        guild_id: int | None,
        channel_id: int | None,
        user: FakeUser,
        name: str,
        target: FakeUser,
    ) -> SentInteraction:
        """Run a user context-menu command (type 2) on ``target``."""
        resolved: dict[str, dict[str, Any]] = {}
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        self._option_value(6, target, guild, channel_id or 0, resolved)
        data, _ = self._command_data(
            name, 2, guild_id, extra={"target_id": str(target.id), "resolved": resolved}
        )
        return await self._send_interaction(
            IT_APPLICATION_COMMAND, guild_id=guild_id, channel_id=channel_id, user=user, data=data
        )

    def _message_arg(self, message: int | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(message, int):
            return self.messages[message]
        stored = self.messages.get(int(message["id"]))
        return stored if stored is not None else dict(message)

    def _component_target(
        self, message: int | Mapping[str, Any], custom_id: str
    ) -> tuple[dict[str, Any], int | None]:
        data = self._message_arg(message)
        if not any(
            c.get("custom_id") == custom_id for c in _walk_components(data.get("components", []))
        ):
            raise ValueError(f"message {data['id']} has no component with custom_id {custom_id!r}")
        guild_id = data.get("guild_id")
        return data, int(guild_id) if guild_id else None

    async def press_button(
        self, message: int | Mapping[str, Any], custom_id: str, user: FakeUser
    ) -> SentInteraction:
        """Click a button on a message; the interaction carries that message."""
        data, guild_id = self._component_target(message, custom_id)
        return await self._send_interaction(
            IT_COMPONENT,
            guild_id=guild_id,
            channel_id=int(data["channel_id"]),
            user=user,
            data={"custom_id": custom_id, "component_type": 2},
            message=data,
        )

    async def select(
        self,
        message: int | Mapping[str, Any],
        custom_id: str,
        values: list[str],
        user: FakeUser,
        *,
        component_type: int = 3,
    ) -> SentInteraction:
        """Choose ``values`` in a (string, by default) select menu on a message."""
        data, guild_id = self._component_target(message, custom_id)
        return await self._send_interaction(
            IT_COMPONENT,
            guild_id=guild_id,
            channel_id=int(data["channel_id"]),
            user=user,
            data={"custom_id": custom_id, "component_type": component_type, "values": values},
            message=data,
        )

    async def submit_modal(
        self, opened_by: SentInteraction, values: Mapping[str, str], user: FakeUser | None = None
    ) -> SentInteraction:
        """Submit the modal the bot opened in answer to ``opened_by``."""
        state = self._interactions[opened_by.id]
        if state.modal is None:
            raise ValueError(f"interaction {opened_by.id} was not answered with a modal")

        def fill(component: Mapping[str, Any]) -> dict[str, Any]:
            if component.get("type") == 1:
                return {"type": 1, "components": [fill(c) for c in component.get("components", [])]}
            if component.get("type") == 18:
                return {"type": 18, "component": fill(component["component"])}
            return {
                "type": component["type"],
                "custom_id": component.get("custom_id"),
                "value": values.get(str(component.get("custom_id")), ""),
            }

        components = [fill(c) for c in state.modal.get("components", [])]
        return await self._send_interaction(
            IT_MODAL_SUBMIT,
            guild_id=state.guild_id,
            channel_id=state.channel_id,
            user=user or state.user,
            data={"custom_id": state.modal["custom_id"], "components": components},
        )

    async def send_user_message(
        self,
        channel_id: int,
        user: FakeUser,
        content: str = "",
        *,
        files: Iterable[FakeFile] = (),
        mentions: Iterable[FakeUser] = (),
    ) -> dict[str, Any]:
        """A user posts a message (MESSAGE_CREATE); content needs the intent, as on Discord."""
        self._register_user(user)
        attachments = [
            self._store_attachment(channel_id, f.filename, f.data, f.content_type) for f in files
        ]
        message = self._new_message(
            channel_id,
            author=user,
            content=content,
            attachments=attachments,
            mentions=[m.payload() for m in mentions],
        )
        await self._dispatch_message(message, wait=True)
        return message

    # ------------------------------------------------------------------ messages (storage)

    def _channel_guild(self, channel_id: int) -> FakeGuild | None:
        for guild in self.guilds.values():
            if guild.channel(channel_id) is not None:
                return guild
        return None

    def _check_channel(self, channel_id: int) -> None:
        if channel_id in self.deleted_channels:
            raise _unknown("Channel", 10003)
        if self._channel_guild(channel_id) is None and channel_id not in self._dm_channels.values():
            raise _unknown("Channel", 10003)

    def _store_attachment(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        attachment_id = snowflake()
        content_type = (
            content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        self._blobs[attachment_id] = (filename, content_type, data)
        quoted = urllib.parse.quote(filename)
        url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{quoted}"
        width, height = _image_size(data) if content_type.startswith("image/") else (None, None)
        payload: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }
        if width is not None:
            payload.update(width=width, height=height)
        return payload

    def _new_message(
        self,
        channel_id: int,
        *,
        author: FakeUser,
        content: str = "",
        embeds: list[Any] | None = None,
        components: list[Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        flags: int = 0,
        message_type: int = 0,
        webhook_id: int | None = None,
        interaction: _InteractionState | None = None,
        mentions: list[dict[str, Any]] | None = None,
        reference: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        guild = self._channel_guild(channel_id)
        message_id = snowflake()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": author.payload(),
            "content": content,
            "timestamp": _iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": embeds or [],
            "components": components or [],
            "reactions": [],
            "pinned": False,
            "type": message_type,
            "flags": flags,
        }
        if guild is not None:
            message["guild_id"] = str(guild.id)
        if webhook_id is not None:
            message["webhook_id"] = str(webhook_id)
            message["application_id"] = str(self.application_id)
        if interaction is not None:
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.payload(),
                "authorizing_integration_owners": interaction.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
        if reference is not None:
            message["message_reference"] = reference
        self.messages[message_id] = message
        return message

    async def _dispatch_message(self, message: dict[str, Any], *, wait: bool) -> None:
        """MESSAGE_CREATE to sessions with the right intents; content blanked without it."""
        if message["flags"] & FLAG_EPHEMERAL:
            return
        if wait:
            await self.wait_until(
                lambda: any(s.ready for s in self._sessions.values()),
                timeout=10.0,
                what="a ready session",
            )
        is_dm = "guild_id" not in message
        needed = INTENT_DIRECT_MESSAGES if is_dm else INTENT_GUILD_MESSAGES
        self.dispatched.append(("MESSAGE_CREATE", message))
        for session in list(self._sessions.values()):
            if not session.ready or not session.intents & needed:
                continue
            data = dict(message)
            by_bot = int(message["author"]["id"]) == self.bot_user.id
            mentions_bot = any(int(m["id"]) == self.bot_user.id for m in message["mentions"])
            if not (is_dm or by_bot or mentions_bot or session.intents & INTENT_MESSAGE_CONTENT):
                data.update(content="", embeds=[], attachments=[], components=[])
            if not is_dm:
                guild = self.guilds[int(message["guild_id"])]
                author = guild.member(int(message["author"]["id"]))
                if author is not None and "webhook_id" not in message:
                    data["member"] = guild.member_payload(author, with_user=False)
            await session.dispatch("MESSAGE_CREATE", data)

    def _echo(self, message: dict[str, Any]) -> None:
        """Dispatch MESSAGE_CREATE for a message the bot made, without blocking the response."""
        task = asyncio.create_task(self._dispatch_message(message, wait=False))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _attachments_from_upload(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[RecordedFile],
        existing: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]] | None:
        """Attachments after a create/edit: kept ones by id plus uploaded ``files[n]``.

        Returns ``None`` when the request does not touch attachments.
        """
        uploads = {}
        for f in files:
            index = f.field.removeprefix("files[").removesuffix("]")
            uploads[index] = f
        if "attachments" not in body and not uploads:
            return None
        by_id = {a["id"]: a for a in existing or []}
        result: list[dict[str, Any]] = []
        used: set[str] = set()
        specs = body.get("attachments")
        if specs is None:
            result.extend(existing or [])
            specs = [{"id": index} for index in uploads]
        for spec in specs:
            key = str(spec.get("id"))
            if key in by_id:
                if by_id[key] not in result:
                    result.append(by_id[key])
            elif key in uploads:
                upload = uploads[key]
                used.add(key)
                attachment = self._store_attachment(
                    channel_id,
                    spec.get("filename") or upload.filename,
                    upload.data,
                    mimetypes.guess_type(upload.filename)[0] or upload.content_type,
                )
                if spec.get("description"):
                    attachment["description"] = spec["description"]
                result.append(attachment)
        for key, upload in uploads.items():  # files without an attachments entry
            if key not in used and not any(str(s.get("id")) == key for s in specs):
                result.append(
                    self._store_attachment(
                        channel_id,
                        upload.filename,
                        upload.data,
                        mimetypes.guess_type(upload.filename)[0],
                    )
                )
        return result

    @staticmethod
    def _validate_content(
        body: Mapping[str, Any], attachments: list[dict[str, Any]] | None, *, creating: bool
    ) -> None:
        content = body.get("content")
        try:
            discord_limits.check_message(body)
        except discord_limits.LimitExceeded as exceeded:
            raise _ApiError(400, 50035, str(exceeded)) from exceeded
        if creating and not (
            content
            or body.get("embeds")
            or attachments
            or body.get("components")
            or body.get("sticker_ids")
            or body.get("poll")
        ):
            raise _ApiError(400, 50006, "Cannot send an empty message")

    def _create_from_body(
        self,
        channel_id: int,
        body: Mapping[str, Any],
        files: list[RecordedFile],
        *,
        message_type: int = 0,
        webhook: _InteractionState | None = None,
        extra_flags: int = 0,
    ) -> dict[str, Any]:
        attachments = self._attachments_from_upload(channel_id, body, files)
        self._validate_content(body, attachments, creating=True)
        return self._new_message(
            channel_id,
            author=self.bot_user,
            content=str(body.get("content") or ""),
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            attachments=attachments,
            flags=int(body.get("flags") or 0) & FLAG_EPHEMERAL | extra_flags,
            message_type=message_type,
            webhook_id=self.application_id if webhook is not None else None,
            interaction=webhook,
            reference=body.get("message_reference"),
        )

    def _edit_from_body(
        self, message: dict[str, Any], body: Mapping[str, Any], files: list[RecordedFile]
    ) -> None:
        attachments = self._attachments_from_upload(
            int(message["channel_id"]), body, files, existing=message["attachments"]
        )
        self._validate_content(body, attachments, creating=False)
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = (
                    body[key] if body[key] is not None else ("" if key == "content" else [])
                )
        if attachments is not None:
            message["attachments"] = attachments
        message["flags"] = int(message["flags"]) & ~FLAG_LOADING
        message["edited_timestamp"] = _iso()

    # ------------------------------------------------------------------ HTTP plumbing

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        api = API_PREFIX
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", GATEWAY_PATH, self._gateway),
            ("GET", "/attachments/{channel}/{attachment}/{filename}", self._get_attachment),
            ("GET", f"{api}/gateway", self._get_gateway),
            ("GET", f"{api}/gateway/bot", self._get_gateway_bot),
            ("GET", f"{api}/users/@me", self._get_me),
            ("GET", f"{api}/users/{{user}}", self._get_user),
            ("POST", f"{api}/users/@me/channels", self._create_dm),
            ("GET", f"{api}/oauth2/applications/@me", self._get_application),
            ("GET", f"{api}/applications/@me", self._get_application),
            ("GET", f"{api}/applications/{{app}}/commands", self._get_commands),
            ("PUT", f"{api}/applications/{{app}}/commands", self._put_commands),
            ("GET", f"{api}/applications/{{app}}/guilds/{{guild}}/commands", self._get_commands),
            ("PUT", f"{api}/applications/{{app}}/guilds/{{guild}}/commands", self._put_commands),
            ("POST", f"{api}/interactions/{{id}}/{{token}}/callback", self._callback),
            ("POST", f"{api}/webhooks/{{app}}/{{token}}", self._followup),
            (
                "GET",
                f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}",
                self._webhook_message,
            ),
            (
                "PATCH",
                f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}",
                self._webhook_message,
            ),
            (
                "DELETE",
                f"{api}/webhooks/{{app}}/{{token}}/messages/{{message}}",
                self._webhook_message,
            ),
            ("GET", f"{api}/channels/{{channel}}", self._get_channel),
            ("POST", f"{api}/channels/{{channel}}/messages", self._post_message),
            ("GET", f"{api}/channels/{{channel}}/messages/{{message}}", self._channel_message),
            ("PATCH", f"{api}/channels/{{channel}}/messages/{{message}}", self._channel_message),
            ("DELETE", f"{api}/channels/{{channel}}/messages/{{message}}", self._channel_message),
            ("GET", f"{api}/guilds/{{guild}}", self._get_guild),
            ("GET", f"{api}/guilds/{{guild}}/channels", self._get_guild_channels),
            ("GET", f"{api}/guilds/{{guild}}/members/{{user}}", self._get_member),
        ]
        for method, path, handler in routes:
            router.add_route(method, path, handler)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == GATEWAY_PATH:
            return await handler(request)
        body, files = await self._parse_body(request)
        request[_BODY], request[_FILES] = body, files
        path = (
            request.path.removeprefix(API_PREFIX)
            if request.path.startswith(API_PREFIX + "/")
            else request.path
        )
        request[_RESPONSE] = None
        try:
            await self._wait_if_held(request.method, path)
            self._check_injected(request.method, path)
            needs_auth = request.path.startswith(API_PREFIX) and not path.startswith(
                ("/interactions/", "/webhooks/", "/gateway")
            )
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _ApiError(401, 0, "401: Unauthorized")
            self._check_uploads(files)
            response = await handler(request)
        except _ApiError as error:
            request[_RESPONSE] = {"message": error.message, "code": error.code}
            response = _json_response(request[_RESPONSE], error.status)
        except web.HTTPNotFound:
            request[_RESPONSE] = {"message": "404: Not Found", "code": 0}
            response = _json_response(request[_RESPONSE], 404)
            self.unhandled.append(
                RecordedRequest(request.method, path, dict(request.query), body, files, 404, None)
            )
        except web.HTTPMethodNotAllowed:
            request[_RESPONSE] = {"message": "405: Method Not Allowed", "code": 0}
            response = _json_response(request[_RESPONSE], 405)
            self.unhandled.append(
                RecordedRequest(request.method, path, dict(request.query), body, files, 405, None)
            )
        self.requests.append(
            RecordedRequest(
                request.method,
                path,
                dict(request.query),
                body,
                files,
                response.status,
                request[_RESPONSE],
            )
        )
        self._notify()
        return response

    async def _wait_if_held(self, method: str, path: str) -> None:
        for held in self.holds:
            if held.method == method and path.startswith(held.path_prefix):
                held.held += 1
                self._notify()
                await held.released.wait()

    @staticmethod
    def _check_uploads(files: list[RecordedFile]) -> None:
        """Refused before the handler, as Discord refuses the request body itself."""
        try:
            discord_limits.check_uploads([len(f.data) for f in files])
        except discord_limits.PayloadTooLarge as too_large:
            raise _ApiError(413, 40005, str(too_large)) from too_large
        except discord_limits.LimitExceeded as too_many:
            raise _ApiError(400, 50035, str(too_many)) from too_many

    def _check_injected(self, method: str, path: str) -> None:
        for error in self.errors:
            if error.times > 0 and error.method == method and path.startswith(error.path_prefix):
                error.times -= 1
                raise _ApiError(error.status, error.code, error.message)

    @staticmethod
    async def _parse_body(request: web.Request) -> tuple[Any, list[RecordedFile]]:
        if not request.can_read_body:
            return None, []
        if request.content_type == "multipart/form-data":
            body: Any = None
            files: list[RecordedFile] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read(decode=False)
                name = part.name or ""
                if name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append(
                        RecordedFile(
                            field=name,
                            filename=part.filename or name,
                            content_type=part.headers.get(
                                "Content-Type", "application/octet-stream"
                            ),
                            data=bytes(data),
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw.decode(errors="replace"), []

    def _reply(self, request: web.Request, data: Any, status: int = 200) -> web.Response:
        request[_RESPONSE] = data
        if data is None:
            return web.Response(status=204)
        return _json_response(data, status)

    # ------------------------------------------------------------------ REST handlers

    async def _get_attachment(self, request: web.Request) -> web.StreamResponse:
        blob = self._blobs.get(int(request.match_info["attachment"]))
        if blob is None:
            raise _unknown("Attachment", 0)
        request[_RESPONSE] = None
        return web.Response(body=blob[2], headers={"Content-Type": blob[1]})

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return self._reply(request, {"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return self._reply(
            request,
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            },
        )

    async def _get_me(self, request: web.Request) -> web.Response:
        return self._reply(
            request, {**self.bot_user.payload(), "verified": True, "mfa_enabled": False}
        )

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request.match_info["user"]))
        if user is None:
            raise _unknown("User", 10013)
        return self._reply(request, user.payload())

    async def _get_application(self, request: web.Request) -> web.Response:
        owner = next((g.owner_id for g in self.guilds.values()), None) or snowflake()
        owner_user = self.users.get(owner) or FakeUser(username="owner", id=owner)
        return self._reply(
            request,
            {
                "id": str(self.application_id),
                "name": self.bot_user.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": owner_user.payload(),
                "team": None,
                "bot": self.bot_user.payload(),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            },
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request[_BODY]["recipient_id"]))
        if user is None:
            raise _unknown("User", 10013)
        return self._reply(request, self._dm_payload(user, self.dm_channel_id(user)))

    def _check_app(self, request: web.Request) -> None:
        if int(request.match_info["app"]) != self.application_id:
            raise _unknown("Application", 10002)

    def _command_store(self, request: web.Request) -> tuple[dict[int, dict[str, Any]], int | None]:
        self._check_app(request)
        if "guild" not in request.match_info:
            return self.global_commands, None
        guild_id = int(request.match_info["guild"])
        if guild_id not in self.guilds:
            raise _ApiError(403, 50001, "Missing Access")
        return self.guild_commands.setdefault(guild_id, {}), guild_id

    async def _get_commands(self, request: web.Request) -> web.Response:
        store, _ = self._command_store(request)
        return self._reply(request, list(store.values()))

    async def _put_commands(self, request: web.Request) -> web.Response:
        store, guild_id = self._command_store(request)
        body = request[_BODY] or []
        if len(body) > 100:
            raise _ApiError(400, 30032, "Maximum number of application commands reached (100)")
        old = {(c["name"], c.get("type", 1)): c for c in store.values()}
        store.clear()
        for spec in body:
            kind = int(spec.get("type", 1))
            previous = old.get((spec["name"], kind))
            command = {
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                "description": "",
                **spec,
                "id": previous["id"] if previous else str(snowflake()),
                "application_id": str(self.application_id),
                "type": kind,
                "version": str(snowflake()),
            }
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            store[int(command["id"])] = command
        return self._reply(request, list(store.values()))

    def _interaction_for_token(self, request: web.Request) -> _InteractionState:
        self._check_webhook_app(request)
        state = self._by_token.get(request.match_info["token"])
        if state is None or self._token_dead(state):
            raise _unknown("Webhook", 10015)
        return state

    def _check_webhook_app(self, request: web.Request) -> None:
        if int(request.match_info["app"]) != self.application_id:
            raise _unknown("Webhook", 10015)

    def _token_dead(self, state: _InteractionState) -> bool:
        ttl = self.interaction_token_ttl
        return state.expired or (ttl is not None and time.monotonic() - state.created > ttl)

    async def _callback(self, request: web.Request) -> web.Response:
        state = self._interactions.get(int(request.match_info["id"]))
        if state is None or state.token != request.match_info["token"] or self._token_dead(state):
            raise _unknown("interaction", 10062)
        deadline = self.callback_deadline
        if (
            not state.acknowledged
            and deadline is not None
            and time.monotonic() - state.created > deadline
        ):
            raise _unknown("interaction", 10062)
        if state.acknowledged:
            raise _ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = request[_BODY] or {}
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        files: list[RecordedFile] = request[_FILES]
        allowed = {
            IT_APPLICATION_COMMAND: {CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE, CB_MODAL},
            IT_COMPONENT: {
                CB_CHANNEL_MESSAGE,
                CB_DEFERRED_CHANNEL_MESSAGE,
                CB_DEFERRED_UPDATE,
                CB_UPDATE_MESSAGE,
                CB_MODAL,
            },
            IT_AUTOCOMPLETE: {CB_AUTOCOMPLETE},
            IT_MODAL_SUBMIT: {
                CB_CHANNEL_MESSAGE,
                CB_DEFERRED_CHANNEL_MESSAGE,
                CB_DEFERRED_UPDATE,
                CB_UPDATE_MESSAGE,
            },
        }[state.type]
        if kind not in allowed:
            raise _ApiError(400, 50035, f"Invalid Form Body (type: callback {kind} not valid here)")
        try:
            if kind == CB_AUTOCOMPLETE:
                discord_limits.check_choices(data.get("choices") or [])
            elif kind == CB_MODAL:
                discord_limits.check_modal(data)
        except discord_limits.LimitExceeded as exceeded:
            raise _ApiError(400, 50035, str(exceeded)) from exceeded

        message: dict[str, Any] | None = None
        message_type = 20 if state.type == IT_APPLICATION_COMMAND else 0
        if kind == CB_CHANNEL_MESSAGE:
            message = self._create_from_body(
                state.channel_id, data, files, message_type=message_type, webhook=state
            )
        elif kind == CB_DEFERRED_CHANNEL_MESSAGE:
            message = self._new_message(
                state.channel_id,
                author=self.bot_user,
                flags=FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL),
                message_type=message_type,
                webhook_id=self.application_id,
                interaction=state,
            )
        elif kind in (CB_DEFERRED_UPDATE, CB_UPDATE_MESSAGE):
            source = state.payload.get("message")
            if source is None:
                raise _ApiError(400, 50035, "Invalid Form Body (type: no message to update)")
            message = self.messages.setdefault(int(source["id"]), dict(source))
            if kind == CB_UPDATE_MESSAGE:
                self._edit_from_body(message, data, files)
        elif kind == CB_MODAL:
            state.modal = data
        state.acknowledged = True
        if message is not None:
            state.original_message_id = int(message["id"])
            if kind in (CB_CHANNEL_MESSAGE, CB_DEFERRED_CHANNEL_MESSAGE):
                self._echo(message)

        interaction: dict[str, Any] = {"id": str(state.id), "type": state.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=bool(message["flags"] & FLAG_LOADING),
                response_message_ephemeral=bool(message["flags"] & FLAG_EPHEMERAL),
            )
            resource["message"] = message
        reply: dict[str, Any] = {"interaction": interaction, "resource": resource}
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return self._reply(request, None)
        return self._reply(request, reply)

    async def _followup(self, request: web.Request) -> web.Response:
        state = self._interaction_for_token(request)
        if not state.acknowledged:
            raise _unknown("Webhook", 10015)
        message = self._create_from_body(
            state.channel_id,
            request[_BODY] or {},
            request[_FILES],
            message_type=20 if state.type == IT_APPLICATION_COMMAND else 0,
            webhook=state,
        )
        self._echo(message)
        if request.query.get("wait", "").lower() not in ("1", "true"):
            return self._reply(request, None)
        return self._reply(request, message)

    async def _webhook_message(self, request: web.Request) -> web.Response:
        state = self._interaction_for_token(request)
        key = request.match_info["message"]
        if key == "@original":
            message_id = state.original_message_id
        else:
            message_id = int(key)
            owned = self.messages.get(message_id, {}).get("interaction_metadata", {}).get("id")
            if owned != str(state.id) and message_id != state.original_message_id:
                message_id = None
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None:
            raise _unknown("Message", 10008)
        if request.method == "DELETE":
            del self.messages[int(message["id"])]
            return self._reply(request, None)
        if request.method == "PATCH":
            self._edit_from_body(message, request[_BODY] or {}, request[_FILES])
        return self._reply(request, message)

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        self._check_channel(channel_id)
        guild = self._channel_guild(channel_id)
        if guild is not None:
            channel = guild.channel(channel_id)
            assert channel is not None
            return self._reply(request, channel.payload(guild.id))
        user_id = next(u for u, c in self._dm_channels.items() if c == channel_id)
        return self._reply(request, self._dm_payload(self.users[user_id], channel_id))

    async def _post_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        self._check_channel(channel_id)
        dm_user = next(
            (self.users[u] for u, c in self._dm_channels.items() if c == channel_id), None
        )
        if dm_user is not None and (not dm_user.accepts_dms or dm_user.bot):
            raise _ApiError(403, 50007, "Cannot send messages to this user")
        guild = self._channel_guild(channel_id)
        if guild is not None:
            needed = discord.Permissions(view_channel=True, send_messages=True).value
            if guild.permissions_of(self.bot_user.id) & needed != needed:
                raise _ApiError(403, 50013, "Missing Permissions")
        body = dict(request[_BODY] or {})
        body.pop("flags", None)  # channel messages cannot be ephemeral
        message = self._create_from_body(channel_id, body, request[_FILES])
        self._echo(message)
        return self._reply(request, message)

    async def _channel_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel"])
        self._check_channel(channel_id)
        message = self.messages.get(int(request.match_info["message"]))
        if (
            message is None
            or int(message["channel_id"]) != channel_id
            or message["flags"] & FLAG_EPHEMERAL
        ):
            raise _unknown("Message", 10008)
        if request.method == "DELETE":
            del self.messages[int(message["id"])]
            return self._reply(request, None)
        if request.method == "PATCH":
            if int(message["author"]["id"]) != self.bot_user.id:
                raise _ApiError(403, 50005, "Cannot edit a message authored by another user")
            self._edit_from_body(message, request[_BODY] or {}, request[_FILES])
        return self._reply(request, message)

    def _guild_arg(self, request: web.Request) -> FakeGuild:
        guild = self.guilds.get(int(request.match_info["guild"]))
        if guild is None:
            raise _unknown("Guild", 10004)
        return guild

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild_arg(request)
        data = self.guild_create_payload(guild, intents=0)
        for key in ("channels", "members", "threads", "presences", "voice_states", "joined_at"):
            data.pop(key, None)
        return self._reply(request, data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild_arg(request)
        channels = [
            c.payload(guild.id) for c in guild.channels if c.id not in self.deleted_channels
        ]
        return self._reply(request, channels)

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self._guild_arg(request)
        user = guild.member(int(request.match_info["user"]))
        if user is None:
            raise _unknown("Member", 10007)
        return self._reply(request, guild.member_payload(user))
