"""/verify reports the C2PA manifest's validity next to the watermark's record."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from tests.fakes.core import PixelWatermark, RecordingQueue, SteppingClock, bot_on, person
from tests.fakes.memory import InMemoryBlobStore, InMemoryUnitOfWork

from stylebot.bot.core.commands import IncomingFile, Verify
from stylebot.bot.core.credentials import NO_CREDENTIALS
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, VerifyReport
from stylebot.bot.core.service import StyleBot
from stylebot.provenance.content_credentials import C2paCredentialsReader, sign_output_png
from stylebot.provenance.metadata import OutputMetadata, encode_png
from stylebot.provenance.signing import CA_FILE, ensure_signing_identity

ALICE = person("alice")


def bot(tmp_path: Path) -> tuple[StyleBot, bytes]:
    identity = ensure_signing_identity(tmp_path / "c2pa")
    reader = C2paCredentialsReader((tmp_path / "c2pa" / CA_FILE).read_bytes())
    made = bot_on(
        InMemoryUnitOfWork(),
        InMemoryBlobStore(),
        RecordingQueue(),
        PixelWatermark(),
        SteppingClock(),
        Policy(),
        credentials=reader,
    )
    pixels = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    meta = OutputMetadata(
        "0123456789ab",
        "a boat",
        "",
        1,
        3,
        7.5,
        128,
        128,
        "DDIM",
        "tiny",
        "ink",
        None,
        datetime(2026, 11, 22, tzinfo=UTC),
    )
    signed = sign_output_png(encode_png(Image.fromarray(pixels), meta), meta, identity)
    return made, signed


async def test_verify_says_whether_the_manifest_holds(tmp_path: Path) -> None:
    stylebot, signed = bot(tmp_path)
    good = await stylebot.handle(Verify(ALICE, IncomingFile("out.png", signed)))
    assert isinstance(good, VerifyReport)
    assert "Content Credentials (C2PA): valid" in good.text
    assert "trusted signer" in good.text
    edited = edit_prompt_chunk(signed, b"a boat", b"a goat")
    bad = await stylebot.handle(Verify(ALICE, IncomingFile("out.png", edited)))
    assert isinstance(bad, VerifyReport)
    assert "Content Credentials (C2PA): INVALID" in bad.text


def edit_prompt_chunk(png: bytes, old: bytes, new: bytes) -> bytes:
    """Change a text chunk and fix its CRC: a well-formed PNG whose metadata was edited."""
    out, position = bytearray(png[:8]), 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"tEXt" and body.startswith(b"parameters\x00"):
            body = body.replace(old, new)
        out += struct.pack(">I", len(body)) + kind + body
        out += struct.pack(">I", zlib.crc32(kind + body))
        position += 12 + length
    assert bytes(out) != png
    return bytes(out)


async def test_verify_says_when_there_is_no_manifest(tmp_path: Path) -> None:
    stylebot, _ = bot(tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), "teal").save(buffer, "JPEG")
    reply = await stylebot.handle(Verify(ALICE, IncomingFile("photo.jpg", buffer.getvalue())))
    assert isinstance(reply, VerifyReport)
    assert reply.text.endswith(NO_CREDENTIALS)
    # No watermark either: nothing "above" survives.
    assert "survives" not in reply.text


async def test_a_refused_file_never_reaches_the_c2pa_reader(tmp_path: Path) -> None:
    stylebot, signed = bot(tmp_path)
    reply = await stylebot.handle(Verify(ALICE, IncomingFile("out.png", signed[:200])))
    assert isinstance(reply, ErrorReply)
    assert "C2PA" not in reply.text
