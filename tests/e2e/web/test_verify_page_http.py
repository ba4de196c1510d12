"""The verify page's HTTP, against the real front end (SQLite usage log, embedded Redis):
its security headers on every answer, the rate limit per visitor and which
X-Forwarded-For it believes, bodies it refuses before reading them, the bound on uploads
in flight, and that `stylebot run` serves it only when the setting is on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from PIL import Image
from tests.fakes.telegram_api import FakeTelegram
from tests.support.picture_edits import png_bytes
from tests.support.verify_web import form, raw_request, serving
from tests.support.watermark_images import scene

from stylebot.bootstrap import FrontEnd, run_frontends
from stylebot.bot.web.page import SECURITY_HEADERS
from stylebot.bot.web.server import MAX_RECEIVING, VerifyWebServer, start_verify_web
from stylebot.config import Settings
from stylebot.startup_checks import StartupError

TOO_QUICKLY = "sending requests too quickly"


@pytest.fixture(autouse=True)
def _local_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's client honours proxy variables only with trust_env; the fakes are local."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_every_answer_carries_the_security_headers(
    page: VerifyWebServer, client: aiohttp.ClientSession
) -> None:
    answers = [
        await client.get(page.url),
        await client.get(page.url + "verify.js"),
        await client.get(page.url + "verify.css"),
        await client.get(page.url + "no-such-page"),
        await client.post(page.url, data=form(b"not an image")),
        await client.post(page.url, data=b"x=1", headers={"Content-Type": "text/plain"}),
        await client.put(page.url),
    ]
    assert [answer.status for answer in answers] == [200, 200, 200, 404, 400, 400, 405]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
        assert "aiohttp" not in answer.headers.get("Server", "")
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert answers[0].content_type == "text/html"
    assert answers[1].content_type == "text/javascript"
    # The page has no inline script or style for the policy to block.
    html = await answers[0].text()
    assert "<script>" not in html
    assert "<style" not in html
    assert re.search(r"<[^>]*\son\w+\s*=", html) is None


async def test_a_file_name_with_script_comes_back_escaped(
    page: VerifyWebServer, client: aiohttp.ClientSession
) -> None:
    """Written by hand rather than by a browser (which percent-encodes quotes and angle
    brackets in a file name): the name is as the sender wants it."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; '
        b'filename="x\'><script>window.__xss=1;<b>.png"\r\n\r\nGIF89a\r\n--b--\r\n'
    )
    answer = await raw_request(
        page.port,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n",
        body,
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"x&#x27;&gt;&lt;script&gt;window.__xss=1;&lt;b&gt;.png" in answer
    assert b"<script>window" not in answer


async def test_the_rate_limit_counts_each_visitor_the_trusted_proxy_names(
    frontend: FrontEnd, client: aiohttp.ClientSession
) -> None:
    picture = png_bytes(scene(96, 96, seed=51))
    frontend.bot.policy = dataclasses.replace(
        frontend.bot.policy, requests_per_window=2, rate_window_s=3600
    )

    async def check(server: VerifyWebServer, forwarded_for: str | None) -> str:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        async with client.post(server.url, data=form(picture), headers=headers) as answer:
            return await answer.text()

    async with serving(frontend, verify_web_trusted_proxies=("127.0.0.1",)) as behind_proxy:
        for _ in range(2):
            assert TOO_QUICKLY not in await check(behind_proxy, "203.0.113.5")
        headers = {"X-Forwarded-For": "203.0.113.5"}
        async with client.post(behind_proxy.url, data=form(picture), headers=headers) as answer:
            # What a client or crawler understands: come back later, not "bad request".
            assert answer.status == 429
            assert 3500 < int(answer.headers["Retry-After"]) <= 3600
            assert TOO_QUICKLY in await answer.text()
        # What the visitor wrote stands left of what the proxy appended: not believed.
        assert TOO_QUICKLY in await check(behind_proxy, "198.51.100.9, 203.0.113.5")
        # Another visitor has a limit of their own; an IPv6 one is counted by their /64.
        assert TOO_QUICKLY not in await check(behind_proxy, "203.0.113.6")
        for host in ("2001:db8:1:2::a", "2001:db8:1:2::b"):
            assert TOO_QUICKLY not in await check(behind_proxy, host)
        assert TOO_QUICKLY in await check(behind_proxy, "2001:db8:1:2::c")

    async with serving(frontend) as no_proxy_trusted:
        # The header is not believed at all: every request counts against the peer.
        assert TOO_QUICKLY not in await check(no_proxy_trusted, "192.0.2.1")
        assert TOO_QUICKLY not in await check(no_proxy_trusted, "192.0.2.2")
        assert TOO_QUICKLY in await check(no_proxy_trusted, "192.0.2.3")


async def test_a_decompression_bomb_is_refused_by_the_cores_checks(
    page: VerifyWebServer, client: aiohttp.ClientSession
) -> None:
    """100 megapixels in a small file: refused from its header, before it is decoded."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    async with client.post(page.url, data=form(buffer.getvalue(), "calm.png")) as answer:
        assert answer.status == 400
        assert "has too many pixels: the limit is 40 megapixels" in await answer.text()


async def test_a_body_declared_too_big_is_refused_before_it_is_read(
    page: VerifyWebServer,
) -> None:
    answer = await raw_request(
        page.port,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 10000000000\r\n\r\n",
        b"--b\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
    assert b"more than the 2.0 MB limit" in body


async def test_uploads_in_flight_are_bounded(
    page: VerifyWebServer, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Slow uploads hold at most MAX_RECEIVING bodies; the next is asked to come back.
    Visitors who then leave mid-upload are no failure of the page's."""
    head = (
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    slow = [await asyncio.open_connection("127.0.0.1", page.port) for _ in range(MAX_RECEIVING)]
    try:
        for _, writer in slow:
            writer.write(head.encode() + part)
            await writer.drain()
        await asyncio.sleep(0.3)  # each is now being read
        answer = await raw_request(page.port, head, part)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"Many images are being checked right now" in answer
    finally:
        for _, writer in slow:
            writer.close()
    await asyncio.sleep(0.3)  # the server notices they left
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    # Their places are free again.
    async with client.post(page.url, data=form(b"not an image")) as freed:
        assert freed.status == 400
        assert "is not an image we can read" in await freed.text()


async def test_the_page_is_off_unless_its_port_is_set(frontend: FrontEnd) -> None:
    off = frontend.settings.replace(verify_web_port=0)
    assert await start_verify_web(frontend.bot, off) is None
    async with serving(frontend) as running:
        taken = frontend.settings.replace(verify_web_port=running.port)
        with pytest.raises(StartupError, match="STYLEBOT_VERIFY_WEB_PORT"):
            await start_verify_web(frontend.bot, taken)


async def test_stylebot_run_serves_the_page_beside_a_chat_platform(
    settings: Settings, client: aiohttp.ClientSession
) -> None:
    """`stylebot run`'s code path: the page comes up with the chat front end and goes
    down with it."""
    token = "7654321:stylebot-web_token"
    async with FakeTelegram(token=token) as fake:
        configured = settings.replace(
            telegram_token=token, telegram_api_url=fake.base_url.removesuffix("/bot")
        )
        stop = asyncio.Event()
        running = asyncio.create_task(run_frontends(configured, stop))
        url = f"http://127.0.0.1:{configured.verify_web_port}/"
        try:
            async with asyncio.timeout(30):
                while True:
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with client.get(url) as answer:
                            assert answer.status == 200
                            assert "Was this image made with stylebot?" in await answer.text()
                            break
                    assert not running.done(), running.exception()
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(url)
