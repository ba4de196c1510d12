"""The verify page against a hostile visitor: multipart tricks, lying headers, hostile
image chunks and Content Credentials, methods it does not serve, and a store that is
down. Against the real front end (SQLite usage log, embedded Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from tests.support.picture_edits import png_bytes
from tests.support.redis_outage import kill_redis_server
from tests.support.verify_web import multipart_body, raw_request, serving
from tests.support.watermark_images import scene

from stylebot.bootstrap import FrontEnd
from stylebot.bot.web import server
from stylebot.bot.web.server import MAX_PARTS, VerifyWebServer
from stylebot.queue.redis_socket import socket_path_for

HEAD = (
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    "Content-Length: {length}\r\n\r\n"
)


async def post(page: VerifyWebServer, body: bytes) -> tuple[int, str]:
    answer = await raw_request(page.port, HEAD.format(length=len(body)), body)
    head, _, text = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), text.decode()


def image_part(data: bytes, name: bytes = b"image") -> tuple[bytes, bytes]:
    headers = b'Content-Disposition: form-data; name="' + name + b'"; filename="a.png"'
    return headers, data


def field_part(name: bytes, value: bytes = b"x") -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"', value


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_form_of_up_to_max_parts_is_read_and_more_are_refused(
    page: VerifyWebServer,
) -> None:
    picture = png_bytes(scene(96, 96, seed=61))
    for count in range(1, MAX_PARTS + 1):
        extra = [field_part(f"note{n}".encode()) for n in range(count - 1)]
        status, text = await post(page, multipart_body(*extra, image_part(picture)))
        assert (status, "No stylebot watermark" in text) == (200, True), (count, text)
    extra = [field_part(f"note{n}".encode()) for n in range(MAX_PARTS)]
    status, text = await post(page, multipart_body(*extra, image_part(picture)))
    assert status == 400
    assert "Please send one image with the form on this page." in text


async def test_a_huge_field_name_is_a_refused_upload_not_a_failure(
    page: VerifyWebServer, caplog: pytest.LogCaptureFixture
) -> None:
    picture = png_bytes(scene(96, 96, seed=62))
    status, text = await post(page, multipart_body(image_part(picture, name=b"n" * 20_000)))
    assert status == 400, text
    assert errors(caplog) == []


@pytest.mark.parametrize(
    "head",
    [
        "G<T / HTTP/1.1\r\nHost: x\r\n\r\n",  # not a method
        "GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + "a" * 10_000 + "\r\n\r\n",  # header > 8 KB
    ],
    ids=["bad-method", "long-header"],
)
async def test_a_request_aiohttp_cannot_parse_logs_no_address_and_no_failure(
    page: VerifyWebServer, caplog: pytest.LogCaptureFixture, head: str
) -> None:
    """aiohttp answers these itself, before the page's code runs; its log line named the
    visitor's address, at ERROR with a traceback."""
    caplog.set_level(logging.DEBUG)
    answer = await raw_request(page.port, head)
    assert answer.startswith(b"HTTP/1.0 400 ")
    await asyncio.sleep(0.1)  # the log line is written after the answer
    logged = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    assert [line for line in logged if "127.0.0.1" in line[1]] == []
    assert errors(caplog) == []
    assert [line for line in logged if "refused a malformed request" in line[1]] != []


async def test_a_slow_request_head_is_cut_off(
    frontend: FrontEnd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slowloris: a header line now and then, never the end of the head. aiohttp's own
    limit was an hour per connection."""
    monkeypatch.setattr(server, "REQUEST_HEAD_TIMEOUT_S", 1.0)
    async with serving(frontend) as page:
        reader, writer = await asyncio.open_connection("127.0.0.1", page.port)

        async def trickle() -> None:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.2)
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()

        started = time.monotonic()
        trickling = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(10):
                answer = await reader.read()  # to the end: the server closes
        finally:
            trickling.cancel()
            writer.close()
        assert answer == b""
        assert 0.9 < time.monotonic() - started < 5


async def test_the_page_checks_images_while_redis_is_down(
    frontend: FrontEnd, page: VerifyWebServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Verifying reads the database and the file, never the queue."""
    kill_redis_server(socket_path_for(frontend.settings.data_dir))
    picture = png_bytes(scene(96, 96, seed=63))
    status, text = await post(page, multipart_body(image_part(picture)))
    assert status == 200
    assert "No stylebot watermark found in this image." in text
    assert errors(caplog) == []
