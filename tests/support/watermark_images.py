"""Pictures and edits the watermark tests share: stand-ins for generated images of several
kinds, unmarked images that must never read as marked, and the ways images get passed on."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def scene(width: int, height: int, seed: int, cell: int = 32, grain_sd: float = 6.0) -> Image.Image:
    """Stand-in for a generated picture: smooth random colour fields (one random colour
    every ``cell`` pixels) plus fine grain."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // cell + 1, width // cell + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    grain = rng.normal(0, grain_sd, (height, width, 3))
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def subject_on_background(background: str, seed: int) -> Image.Image:
    """A 512x512 image, 70% plain background (white or black) around a subject."""
    image = Image.new("RGB", (512, 512), background)
    image.paste(scene(280, 280, seed), (116, 116))
    return image


def reencode(image: Image.Image, fmt: str, **params: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def unmarked_images() -> list[tuple[str, Image.Image]]:
    rng = np.random.default_rng(1234)
    images: list[tuple[str, Image.Image]] = []
    for i in range(8):
        size = (256, 256) if i % 2 else (512, 384)
        noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        images.append((f"noise{i}", Image.fromarray(noise)))
    for colour in [
        (0, 0, 0),
        (255, 255, 255),
        (128, 128, 128),
        (255, 0, 0),
        (0, 0, 255),
        (12, 200, 90),
        (250, 250, 5),
        (90, 160, 250),
    ]:
        images.append((f"flat{colour}", Image.new("RGB", (384, 384), colour)))
    ramp = np.linspace(0, 255, 512)
    horizontal = np.tile(ramp, (512, 1))
    for name, plane in [
        ("h", horizontal),
        ("v", horizontal.T),
        ("d", (horizontal + horizontal.T) / 2),
    ]:
        grey = np.stack([plane] * 3, axis=-1)
        colour = np.stack([plane, plane[::-1], np.full_like(plane, 128)], axis=-1)
        images.append((f"gradient-grey-{name}", Image.fromarray(grey.astype(np.uint8))))
        images.append((f"gradient-colour-{name}", Image.fromarray(colour.astype(np.uint8))))
    for i in range(8):
        images.append((f"scene{i}", scene(512 if i % 2 else 768, 512, seed=100 + i)))
    checker = (np.indices((512, 512)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    images.append(("checkerboard", Image.fromarray(checker).convert("RGB")))
    return images


def illustration(seed: int) -> Image.Image:
    """Flat colours and hard edges: the hardest case for a chroma watermark."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (512, 512), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 400, 2))
        box = (x, y, x + int(rng.integers(20, 250)), y + int(rng.integers(20, 250)))
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def telegram_photo(image: Image.Image) -> Image.Image:
    """Telegram's photo path: long side at most 1280 px, then JPEG q87."""
    scale = min(1.0, 1280 / max(image.size))
    if scale < 1:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    return reencode(image, "JPEG", quality=87)
