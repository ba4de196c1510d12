"""Requests to the public verify page: a form as a browser sends it, and raw bytes as a
hostile client sends them."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import aiohttp

from stylebot.bootstrap import FrontEnd
from stylebot.bot.web.server import VerifyWebServer, start_verify_web
from tests.support.processes import free_port

__all__ = ["form", "multipart_body", "raw_request", "serving"]


def form(data: bytes, filename: str = "picture.png") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("image", data, filename=filename, content_type="image/png")
    return body


def multipart_body(*parts: tuple[bytes, bytes], boundary: bytes = b"b") -> bytes:
    """A multipart body written by hand: each part as (its headers, its content)."""
    body = b"".join(
        b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
        for headers, content in parts
    )
    return body + b"--" + boundary + b"--\r\n"


async def raw_request(port: int, head: str, body: bytes = b"") -> bytes:
    """Send bytes as they are (a lying Content-Length, a body cut short); the answer's
    head and body. (The server may go on reading what the client still sends for a
    while after answering, so the answer is read by its length, not to the close.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        async with asyncio.timeout(10):
            answer_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer_head)
            assert length is not None, answer_head
            return answer_head + await reader.readexactly(int(length.group(1)))
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serving(frontend: FrontEnd, **settings: object) -> AsyncIterator[VerifyWebServer]:
    """Another page on the same front end, with other settings."""
    changed = frontend.settings.replace(verify_web_port=free_port(), **settings)
    server = await start_verify_web(frontend.bot, changed)
    assert server is not None
    try:
        yield server
    finally:
        await server.stop()
