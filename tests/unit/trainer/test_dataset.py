"""Uploads become training images: upright, RGB, no metadata, their shape kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from stylebot.trainer.dataset import prepare_upload


def _jpeg_with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_an_upload_is_turned_upright_and_keeps_its_aspect_ratio() -> None:
    image = Image.new("RGB", (200, 100), (0, 255, 0))
    image.paste(Image.new("RGB", (100, 100), (255, 0, 0)), (0, 0))
    uploaded = _jpeg_with_orientation(image, 6)  # displayed rotated 90° clockwise
    out = prepare_upload(uploaded, 512)
    # Upright it is 100 wide and 200 tall, red on top: nothing cropped.
    assert out.size == (100, 200)
    assert out.mode == "RGB"
    assert not out.info
    assert len(out.getexif()) == 0
    pixels = np.asarray(out).astype(int)
    assert pixels[20, 50, 0] > 200
    assert pixels[180, 50, 1] > 200


def test_a_large_upload_shrinks_to_about_four_times_the_training_area() -> None:
    out = prepare_upload(Image.new("RGBA", (3000, 1000)), 256)
    width, height = out.size
    assert width * height <= 4 * 256 * 256
    assert width * height > 3.9 * 256 * 256
    assert width / height == pytest.approx(3.0, rel=0.01)
    assert out.mode == "RGB"
    small = Image.new("RGB", (300, 200))
    assert prepare_upload(small, 256).size == (300, 200)


def test_a_bad_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="resolution"):
        prepare_upload(Image.new("RGB", (10, 10)), 0)
