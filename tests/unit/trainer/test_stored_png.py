"""The worker decodes training images with the PNG decoder only, pixel count checked first."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from stylebot.bot.core.images import normalize_upload
from stylebot.trainer.dataset import NotAStoredPng, open_stored_png


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_the_png_the_front_end_stores_opens() -> None:
    stored = normalize_upload("a.jpg", encoded(Image.new("RGB", (96, 80), "teal"), "JPEG")).data
    image = open_stored_png(stored)
    assert image.format == "PNG"
    assert image.size == (96, 80)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "BMP", "TIFF"])
def test_other_formats_are_refused_not_decoded(fmt: str) -> None:
    with pytest.raises(NotAStoredPng, match="not a readable PNG"):
        open_stored_png(encoded(Image.new("RGB", (32, 32), "red"), fmt))


def test_too_many_pixels_is_refused_from_the_header() -> None:
    png = encoded(Image.new("RGB", (100, 60), "red"), "PNG")
    with pytest.raises(NotAStoredPng, match="100x60 pixels, more than the 5000"):
        open_stored_png(png, max_pixels=5000)
    assert open_stored_png(png, max_pixels=6000).size == (100, 60)
