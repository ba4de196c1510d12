"""Edits of a picture that /verify must tell apart from re-encoding: a banner over part
of it, another picture pasted over part of it. (Re-encodings: reencode, half_and_back and
telegram_photo in tests.unit.provenance.test_watermark.)"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def banner(
    image: Image.Image, share: float, colour: str = "black", at_top: bool = False
) -> Image.Image:
    """A full-width bar over `share` of the picture's height, at the bottom (or top)."""
    edited = image.convert("RGB")
    height = round(edited.height * share)
    top = 0 if at_top else edited.height - height
    ImageDraw.Draw(edited).rectangle((0, top, edited.width - 1, top + height - 1), fill=colour)
    return edited


def paste(image: Image.Image, other: Image.Image, share: float) -> Image.Image:
    """`other`, scaled to cover `share` of the picture's area, over its bottom-right."""
    edited = image.convert("RGB")
    side = math.sqrt(share)
    size = (round(edited.width * side), round(edited.height * side))
    edited.paste(
        other.convert("RGB").resize(size), (edited.width - size[0], edited.height - size[1])
    )
    return edited
