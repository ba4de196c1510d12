"""The perceptual hash: copies match, unrelated pictures and flat images do not."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from stylebot.bot.core.perceptual import (
    PerceptualHash,
    hamming,
    perceptual_hash,
    perceptual_hash_of_png,
)


def picture(seed: int, size: int = 256) -> Image.Image:
    """A smooth random 'painting': low-frequency noise, so it has real structure."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(small, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    return image.filter(ImageFilter.GaussianBlur(2))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_re_encoded_resized_and_slightly_cropped_copies_are_near() -> None:
    for seed in range(10):
        original = picture(seed)
        base = perceptual_hash(original)
        assert base.informative
        assert base.near(perceptual_hash(jpeg(original, 60)))
        assert base.near(perceptual_hash(original.resize((128, 128))))
        assert base.near(perceptual_hash(original.crop((4, 4, 252, 252))))


def test_unrelated_pictures_are_not_near() -> None:
    hashes = [perceptual_hash(picture(seed)) for seed in range(30)]
    pairs = [(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert all(not a.near(b) for a, b in pairs)
    assert min(hamming(a, b) for a, b in pairs) > 10


def test_flat_images_never_match_anything() -> None:
    red = perceptual_hash(Image.new("RGB", (100, 100), (255, 0, 0)))
    blue = perceptual_hash(Image.new("RGB", (100, 100), (0, 0, 255)))
    assert not red.informative
    assert not red.near(blue)
    assert not red.near(red)


def test_the_hex_form_round_trips() -> None:
    original = perceptual_hash(picture(3))
    assert PerceptualHash.from_hex(original.hex) == original
    flat = perceptual_hash(Image.new("RGB", (64, 64)))
    assert flat.hex.startswith("flat:")
    assert PerceptualHash.from_hex(flat.hex) == flat
    buffer = io.BytesIO()
    picture(3).save(buffer, "PNG")
    assert perceptual_hash_of_png(buffer.getvalue()) == original
