"""A corpus of hostile and broken input, made here (nothing is checked in).

These add to the refused uploads of ``tests/unit/core/test_images.py`` (``BAD_UPLOADS``),
which the core's own tests already send through ``StyleBot.handle``; none repeats one of
those. Each case names words the reply must contain, so "a clear message" is checked, not
just "some error".
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, PngImagePlugin

from stylebot.bot.core.commands import Command, Imagine, TrainStyle
from stylebot.bot.core.model import Requester


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def textured(size: tuple[int, int] = (128, 128), seed: int = 1) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


PNG = encode(textured(), "PNG")
JPEG = encode(textured(), "JPEG", quality=90)
WEBP = encode(textured(), "WEBP")


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def _jpeg_claiming(width: int, height: int) -> bytes:
    sof = JPEG.find(b"\xff\xc0")
    return _patched(JPEG, sof + 5, struct.pack(">HH", height, width))


def _png_with_huge_ztxt() -> bytes:
    # 50 MB of text squeezed into ~50 kB: a zip bomb in a metadata chunk.
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "A" * (50 * 1024 * 1024), zip=True)
    return encode(textured(), "PNG", pnginfo=info)


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (96, 96), colour) for colour in ("red", "blue")]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50)


SVG_XXE = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>'
)

NOT_READABLE = ("not an image we can read",)
DAMAGED = ("damaged or incomplete",)


@dataclass(frozen=True)
class HostileFile:
    id: str
    filename: str
    make: Callable[[], bytes]
    words: tuple[str, ...]


HOSTILE_FILES: list[HostileFile] = [
    # Truncated and corrupt files.
    HostileFile("jpeg-soi-only", "cut.jpg", lambda: b"\xff\xd8", NOT_READABLE),
    HostileFile("png-signature-only", "cut.png", lambda: PNG[:8], NOT_READABLE),
    HostileFile("png-header-only", "cut.png", lambda: PNG[:33], NOT_READABLE),
    HostileFile("png-bad-header-crc", "bad.png", lambda: _patched(PNG, 29, b"\x00"), NOT_READABLE),
    HostileFile("png-zero-width", "bad.png", lambda: _patched(PNG, 16, bytes(4)), NOT_READABLE),
    HostileFile("webp-truncated", "cut.webp", lambda: WEBP[:100], DAMAGED),
    HostileFile("webp-riff-only", "cut.webp", lambda: b"RIFF\x00\x00\x00\x00WEBP", NOT_READABLE),
    HostileFile(
        "jpeg-without-scan",
        "cut.jpg",
        lambda: JPEG[: JPEG.find(b"\xff\xda")] + b"\xff\xd9",
        DAMAGED,
    ),
    HostileFile(
        "jpeg-zeroed-huffman-table",
        "bad.jpg",
        lambda: _patched(JPEG, JPEG.find(b"\xff\xc4") + 4, bytes(40)),
        DAMAGED,
    ),
    HostileFile("whitespace-only", "blank.png", lambda: b"   \n\t   ", NOT_READABLE),
    # Decompression bombs and huge dimensions.
    HostileFile(
        "zlib-bomb-8000x8000",
        "bomb.png",
        lambda: encode(Image.new("1", (8000, 8000)), "PNG"),
        ("8000×8000", "too many pixels"),
    ),
    HostileFile(
        "jpeg-header-60000x60000",
        "bomb.jpg",
        lambda: _jpeg_claiming(60000, 60000),
        ("too many pixels",),
    ),
    HostileFile("ztxt-zip-bomb", "meta.png", _png_with_huge_ztxt, DAMAGED),
    HostileFile(
        "one-pixel-high-100000-wide",
        "line.png",
        lambda: encode(Image.new("1", (100000, 1)), "PNG"),
        ("100000×1", "at most 8192"),
    ),
    HostileFile(
        "more-than-20-mb", "huge.png", lambda: bytes(21 * 1024 * 1024), ("21.0 MB", "20.0 MB")
    ),
    # Animated images under still-image names.
    HostileFile("animated-webp-named-jpg", "still.jpg", lambda: _animated("WEBP"), ("animated",)),
    HostileFile("animated-gif-named-webp", "still.webp", lambda: _animated("GIF"), ("GIF",)),
    # Polyglots and other formats under image names.
    HostileFile(
        "jpeg-header-then-pdf",
        "doc.jpg",
        lambda: b"\xff\xd8\xff\xe0" + b"%PDF-1.7\n" + bytes(200),
        DAMAGED,
    ),
    HostileFile(
        "png-signature-then-html",
        "page.png",
        lambda: PNG[:8] + b"<html><script>alert(1)</script></html>",
        NOT_READABLE,
    ),
    HostileFile(
        "html-named-png",
        "page.png",
        lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        NOT_READABLE,
    ),
    HostileFile(
        "pdf-named-jpg",
        "scan.jpg",
        lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF",
        ("PDF document",),
    ),
    HostileFile("svg-with-xxe-named-png", "logo.png", lambda: SVG_XXE, ("SVG",)),
    HostileFile("svgz-named-png", "logo.png", lambda: zlib.compress(b"<svg/>"), NOT_READABLE),
    HostileFile("elf-named-png", "run.png", lambda: b"\x7fELF" + bytes(100), NOT_READABLE),
    HostileFile("zip-named-webp", "pack.webp", lambda: b"PK\x03\x04" + bytes(100), NOT_READABLE),
    HostileFile(
        "heic-named-jpg", "phone.jpg", lambda: bytes(4) + b"ftypheic" + bytes(100), ("HEIC",)
    ),
    HostileFile(
        "avif-named-png", "phone.png", lambda: bytes(4) + b"ftypavif" + bytes(100), ("AVIF",)
    ),
    HostileFile("ico-named-png", "icon.png", lambda: b"\x00\x00\x01\x00" + bytes(100), ("ICO",)),
    HostileFile("psd-named-png", "art.png", lambda: b"8BPS" + bytes(100), ("Photoshop",)),
    HostileFile("jxl-named-jpg", "new.jpg", lambda: b"\xff\x0a" + bytes(100), ("JPEG XL",)),
    # Wrong extensions.
    HostileFile("png-named-svg", "drawing.svg", lambda: PNG, ("“.svg”",)),
    HostileFile("png-named-html", "page.html", lambda: PNG, ("“.html”",)),
    HostileFile("jpeg-named-pdf", "scan.pdf", lambda: JPEG, ("“.pdf”",)),
    HostileFile("png-double-extension-exe", "cat.png.exe", lambda: PNG, ("“.exe”",)),
    # Names with path separators and control characters (content also bad, so refused).
    HostileFile(
        "windows-traversal-name",
        "..\\..\\windows\\evil.png",
        lambda: b"MZ" + bytes(64),
        ("“evil.png”",),
    ),
    HostileFile(
        "unix-traversal-name", "../../etc/passwd.png", lambda: b"root:x:0:0", ("“passwd.png”",)
    ),
    HostileFile("nul-in-name", "a\x00b.png", lambda: b"junk", ("“ab.png”",)),
    HostileFile("ansi-escape-in-name", "\x1b[2Jx.png", lambda: b"junk", ("“[2Jx.png”",)),
    HostileFile("bidi-override-in-name", "gnp\u202eexe.png", lambda: b"junk", ("“gnpexe.png”",)),
]


@dataclass(frozen=True)
class HostileCommand:
    id: str
    make: Callable[[Requester], Command]
    words: tuple[str, ...]


def _imagine(**fields: object) -> Callable[[Requester], Command]:
    return lambda who: Imagine(who, **{"prompt": "a lighthouse", **fields})  # type: ignore[arg-type]


def _train(name: str) -> Callable[[Requester], Command]:
    return lambda who: TrainStyle(who, name)


NAME_RULE = ("not a valid style name",)

HOSTILE_COMMANDS: list[HostileCommand] = [
    HostileCommand("overlong-prompt", _imagine(prompt="a" * 100_000), ("limited to",)),
    HostileCommand("overlong-negative", _imagine(negative_prompt="b" * 5000), ("limited to",)),
    HostileCommand("whitespace-prompt", _imagine(prompt=" \n\t "), ("Describe the image",)),
    HostileCommand("huge-seed", _imagine(seed=2**70), ("seed",)),
    HostileCommand("negative-seed", _imagine(seed=-1), ("seed",)),
    HostileCommand("billion-steps", _imagine(steps=10**9), ("steps",)),
    HostileCommand("huge-size", _imagine(width=100_000, height=100_000), ("width",)),
    HostileCommand("odd-size", _imagine(width=513), ("multiple of 8",)),
    HostileCommand("thousand-images", _imagine(count=1000), ("count",)),
    HostileCommand("path-style-reference", _imagine(style="../../etc/passwd"), ("no style",)),
    HostileCommand("style-traversal", _train("../../etc/passwd"), NAME_RULE),
    HostileCommand("style-with-slash", _train("ink/wash"), NAME_RULE),
    HostileCommand("style-with-backslash", _train("ink\\wash"), NAME_RULE),
    HostileCommand("style-nul", _train("ink\x00"), NAME_RULE),
    HostileCommand("style-bidi", _train("ink\u202etxt"), NAME_RULE),
    HostileCommand("style-overlong", _train("a" * 10_000), NAME_RULE),
    HostileCommand("style-empty", _train(""), NAME_RULE),
    HostileCommand("style-non-latin", _train("名前"), NAME_RULE),
    HostileCommand("style-dot-dot", _train(".."), NAME_RULE),
    HostileCommand("style-sql", _train("x'); DROP TABLE styles;--"), NAME_RULE),
]
