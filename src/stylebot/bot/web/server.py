"""The public verify page: an aiohttp server that `stylebot run` starts when
`verify_web_port` is set, meant to sit behind the operator's reverse proxy.

It is an adapter like the chat ones: it turns an upload into the core's Verify command
from a visitor (stylebot.bot.core.visitors: never anyone's maker, rate-limited by where
the request came from) and the reply into HTML (stylebot.bot.web.page). The core checks
the file (size, pixels, decompression bombs, its image-work semaphore); this module
bounds what reaches it: one file per request, at most `max_upload_bytes`, read within a
time limit, and only a few uploads received at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from stylebot.bot.core.commands import IncomingFile, Verify
from stylebot.bot.core.replies import ErrorReply, TooQuickly, VerifyReport
from stylebot.bot.core.service import StyleBot
from stylebot.bot.core.visitors import visitor
from stylebot.bot.web.clients import ClientKeys, IpNetwork, client_address, trusted_networks
from stylebot.bot.web.page import (
    SCRIPT,
    SECURITY_HEADERS,
    STYLE,
    error_page,
    form_page,
    report_page,
)
from stylebot.bot.web.protocol_log import protocol_log
from stylebot.config import Settings
from stylebot.startup_checks import StartupError

log = logging.getLogger(__name__)

FIELD = "image"
# Room for the multipart boundaries and part headers around the file.
BODY_OVERHEAD = 64 * 1024
# A body declared larger than this is refused before any of it is read; up to it, an
# oversized file is read to the end (and dropped) so that the browser shows the answer
# instead of a reset connection.
DRAIN_FACTOR = 2
MAX_PARTS = 4
MAX_RECEIVING = 8  # uploads being received at once; more are asked to come back
BODY_TIMEOUT_S = 60.0
# A connection that has not sent a whole request head this long after it opened (or
# after its last answer) is closed. aiohttp's own default is an hour, which lets a few
# slow clients hold open enough sockets to starve the whole bot process of files.
REQUEST_HEAD_TIMEOUT_S = 15.0
CHUNK = 64 * 1024

_SETTINGS_KEY = web.AppKey("settings", Settings)
_BOT_KEY = web.AppKey("bot", StyleBot)
_KEYS_KEY = web.AppKey("client_keys", ClientKeys)
_RECEIVING_KEY = web.AppKey("receiving", asyncio.Semaphore)
_PROXIES_KEY: web.AppKey[tuple[IpNetwork, ...]] = web.AppKey("trusted_proxies")


class _Refused(Exception):
    """An upload refused before it reaches the core: the status and what to say."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _limit_text(max_bytes: int) -> str:
    return (
        f"That file is more than the {max_bytes / 1_048_576:.1f} MB limit. Please send a "
        "smaller image (for example saved as JPEG)."
    )


async def _show_form(request: web.Request) -> web.Response:
    return _html(form_page(request.app[_SETTINGS_KEY].max_upload_bytes))


async def _check(request: web.Request) -> web.Response:
    max_bytes = request.app[_SETTINGS_KEY].max_upload_bytes
    receiving = request.app[_RECEIVING_KEY]
    if receiving.locked():
        raise _Refused(503, "Many images are being checked right now. Please try again soon.")
    async with receiving:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                filename, data = await _read_upload(request, max_bytes)
        except TimeoutError:
            raise _Refused(408, "The upload took too long. Please try again.") from None
    proxies = request.app[_PROXIES_KEY]
    address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), proxies)
    key = request.app[_KEYS_KEY].key_of(address)
    reply = await request.app[_BOT_KEY].handle(Verify(visitor(key), IncomingFile(filename, data)))
    match reply:
        case VerifyReport(private=False):
            return _html(report_page(reply, max_bytes))
        case TooQuickly(retry_after_s=wait):
            answer = _html(error_page(reply, max_bytes), status=429)
            answer.headers["Retry-After"] = str(wait)
            return answer
        case ErrorReply():
            return _html(error_page(reply, max_bytes), status=400)
    # A visitor is nobody's maker: a private report or another reply is a bug, not shown.
    log.error("the verify page got a %s it must not show", type(reply).__name__)
    raise _Refused(500, "Something went wrong on our side; nothing was shown.")


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[str, bytes]:
    """The one file of the form, read in chunks and never past `max_bytes`."""
    declared = request.content_length
    if declared is not None and declared > DRAIN_FACTOR * max_bytes + BODY_OVERHEAD:
        raise _Refused(413, _limit_text(max_bytes))
    if request.content_type != "multipart/form-data":
        raise _Refused(400, "Please send the image with the form on this page.")
    try:
        reader = await request.multipart()
        found: tuple[str, bytes] | None = None
        too_big = False
        received = 0
        # One read past MAX_PARTS: a form of exactly MAX_PARTS parts must reach its end.
        for parts_read in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if parts_read == MAX_PARTS or not isinstance(part, BodyPartReader):
                raise _Refused(400, "Please send one image with the form on this page.")
            is_file = part.name == FIELD and found is None
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                received += len(chunk)
                if received > DRAIN_FACTOR * max_bytes + BODY_OVERHEAD:
                    raise _Refused(413, _limit_text(max_bytes))
                if is_file and size <= max_bytes:
                    chunks.append(chunk)
            if is_file:
                too_big = size > max_bytes
                found = (part.filename or "image", b"".join(chunks))
    # aiohttp's parser on a malformed body: ValueError, or HttpProcessingError for a
    # part's header line that is too long or cannot be read.
    except (ValueError, HttpProcessingError) as exc:
        raise _Refused(400, "That upload could not be read. Please try again.") from exc
    except ConnectionError:  # the visitor left (or lost the line) mid-upload: no failure
        raise _Refused(400, "The upload was cut off. Please try again.") from None
    if too_big:
        raise _Refused(413, _limit_text(max_bytes))
    if found is None or not found[1]:
        raise _Refused(400, "Please choose an image first.")
    return found


@web.middleware
async def _as_pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every answer is a page of ours: refusals, aiohttp's own errors, and failures."""
    max_bytes = request.app[_SETTINGS_KEY].max_upload_bytes
    try:
        return await handler(request)
    except _Refused as refused:
        response = _html(error_page(refused.text, max_bytes), status=refused.status)
        if refused.status == 413:
            response.force_close()  # the rest of the body is not read
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = "There is no such page here." if exc.status == 404 else exc.reason
        return _html(error_page(text, max_bytes), status=exc.status)
    except Exception:
        log.exception("the verify page failed")
        return _html(error_page("Something went wrong on our side.", max_bytes), status=500)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = "stylebot"


def _asset(text: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type, charset="utf-8")

    return serve


def verify_web_app(bot: StyleBot, settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[_as_pages],
        client_max_size=settings.max_upload_bytes + BODY_OVERHEAD,
    )
    app[_SETTINGS_KEY] = settings
    app[_BOT_KEY] = bot
    app[_KEYS_KEY] = ClientKeys()
    app[_RECEIVING_KEY] = asyncio.Semaphore(MAX_RECEIVING)
    app[_PROXIES_KEY] = trusted_networks(settings.verify_web_trusted_proxies)
    app.router.add_get("/", _show_form)
    app.router.add_post("/", _check)
    app.router.add_get("/verify.css", _asset(STYLE, "text/css"))
    app.router.add_get("/verify.js", _asset(SCRIPT, "text/javascript"))
    app.on_response_prepare.append(_security_headers)
    return app


@dataclass
class VerifyWebServer:
    """The running page; `stop()` closes its port."""

    host: str
    port: int
    _runner: web.AppRunner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_verify_web(bot: StyleBot, settings: Settings) -> VerifyWebServer | None:
    """Serve the page when `verify_web_port` is set (not 0); None otherwise."""
    if not settings.verify_web_port:
        return None
    host, port = settings.verify_web_host, settings.verify_web_port
    # No access log: it would write every visitor's address; the proxy keeps its own.
    runner = web.AppRunner(
        verify_web_app(bot, settings),
        access_log=None,
        logger=protocol_log(),
        keepalive_timeout=REQUEST_HEAD_TIMEOUT_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:  # the port is taken, or the host is not this machine's
        await runner.cleanup()
        raise StartupError(
            f"cannot serve the verify page on {host}:{port} ({exc.strerror}): set "
            "STYLEBOT_VERIFY_WEB_PORT to a free port, or 0 to turn the page off"
        ) from None
    log.info("verify page on http://%s:%d/", host, port)
    return VerifyWebServer(host, port, runner)
