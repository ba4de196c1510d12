"""Edits of a picture that /verify must tell apart from re-encoding: a banner over part
of it, another picture pasted over part of it. (Re-encodings: reencode, half_and_back and
telegram_photo in tests.unit.provenance.test_watermark.)"""

from __future__ import annotations

import io
import math

from PIL import Image, ImageDraw, ImageFont


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


def text_over(image: Image.Image, size_at_1024: int, colour: tuple[int, int, int]) -> Image.Image:
    """Lines of text written over the whole picture, every 64 px (at a 1024 px side), in a
    font of `size_at_1024` px scaled with the picture: thin strokes, no block covered."""
    edited = image.convert("RGB")
    scale = edited.width / 1024
    font = ImageFont.load_default(size=max(6, round(size_at_1024 * scale)))
    draw = ImageDraw.Draw(edited)
    line = "THIS PICTURE IS FAKE - NOT MADE BY THE BOT " * 2
    for top in range(round(20 * scale), edited.height, max(1, round(64 * scale))):
        draw.text((4, top), line, fill=colour, font=font)
    return edited


def small_logo(image: Image.Image, side_share: float) -> Image.Image:
    """A green disc `side_share` of the picture's width across, a third of the way in."""
    edited = image.convert("RGB")
    side = max(2, round(edited.width * side_share))
    left, top = edited.width // 3, edited.height // 3
    ImageDraw.Draw(edited).ellipse((left, top, left + side, top + side), fill=(20, 200, 40))
    return edited
