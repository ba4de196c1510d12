"""Watermark robustness: how often the output id is read back after common edits, and how
often an unmarked image is read as marked.

Images are made here, varied on purpose: smooth colour fields with grain, multi-octave
"photo" noise, flat illustrations (shapes and lines on plain backgrounds), a subject on a
white or black background, gradients; at 256x256, 512x512, 768x512, 512x768 and 1024x1024.

Edits: PNG (none), JPEG q90/q75/q60, resize to half and back (bicubic), the same then
JPEG q75, and Telegram's photo path (long side at most 1280 px, JPEG q87).

The baseline, measured in the same run on the same marked images, is the same mark read
without error correction: hard majority votes, accepted only if all 128 bits are right
and the CRC matches. The ratio is recovery with error correction over recovery without.

Run: .venv/bin/python bench/watermark_robustness.py [--images 300] [--unmarked 300]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stylebot.provenance.watermark import (
    CODE_BITS,
    _soft_bits,
    _u_plane,
    code_bits,
    embed_watermark,
    inspect_watermark,
    new_output_id,
)

SIZES = [(256, 256), (512, 512), (768, 512), (512, 768), (1024, 1024)]


# -- images --------------------------------------------------------------------------


def smooth_field(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    cell = int(rng.choice([16, 32, 64]))
    coarse = rng.integers(0, 256, (h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
    big = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float64)


def scene(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    grain = rng.normal(0, rng.uniform(0, 8), (h, w, 3))
    return Image.fromarray(np.clip(smooth_field(w, h, rng) + grain, 0, 255).astype(np.uint8))


def photo_noise(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """Several octaves of smooth noise: texture at every scale, like a photograph."""
    total = np.zeros((h, w, 3))
    for octave, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        coarse = rng.normal(0, 1, (h // octave + 2, w // octave + 2, 3)).astype(np.float32)
        layer = np.stack(
            [
                np.asarray(
                    Image.fromarray(coarse[:, :, c]).resize((w, h), Image.Resampling.BICUBIC)
                )
                for c in range(3)
            ],
            axis=-1,
        )
        total += weight * layer
    total = (total - total.min()) / (np.ptp(total) + 1e-9) * 255
    return Image.fromarray(total.astype(np.uint8))


def illustration(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """Flat colours, hard edges: the hardest case for a chroma watermark."""
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    image = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 25))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        match int(rng.integers(0, 3)):
            case 0:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            case 1:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
            case _:
                draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 12)))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2))))
    return image


def subject_on_plain(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (w, h), "white" if rng.random() < 0.5 else "black")
    sw, sh = w * 6 // 10, h * 6 // 10
    image.paste(scene(sw, sh, rng), ((w - sw) // 2, (h - sh) // 2))
    return image


def gradient(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    a, b, c = (rng.uniform(0, 255, 3) for _ in range(3))
    pixels = a * x + b * y + c * (1 - x) * (1 - y)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


KINDS: list[tuple[str, Callable[[int, int, np.random.Generator], Image.Image]]] = [
    ("scene", scene),
    ("photo", photo_noise),
    ("illustration", illustration),
    ("subject-on-plain", subject_on_plain),
    ("gradient", gradient),
]


# -- edits ---------------------------------------------------------------------------


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def half_and_back(image: Image.Image) -> Image.Image:
    w, h = image.size
    small = image.resize((w // 2, h // 2), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def telegram(image: Image.Image) -> Image.Image:
    """Telegram's photo path: long side at most 1280 px, then JPEG at quality 87."""
    w, h = image.size
    scale = min(1.0, 1280 / max(w, h))
    if scale < 1:
        image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    return jpeg(image, 87)


EDITS: list[tuple[str, Callable[[Image.Image], Image.Image]]] = [
    ("png", png),
    ("jpeg-q90", lambda i: jpeg(i, 90)),
    ("jpeg-q75", lambda i: jpeg(i, 75)),
    ("jpeg-q60", lambda i: jpeg(i, 60)),
    ("half-and-back", half_and_back),
    ("half-and-back+jpeg-q75", lambda i: jpeg(half_and_back(i), 75)),
    ("telegram", telegram),
]


def read_without_correction(image: Image.Image, output_id: str) -> bool:
    """The baseline: hard votes, every one of the 128 bits right (so the CRC matches)."""
    import pywt

    rgb = np.asarray(image.convert("RGB"))
    rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    low, _ = pywt.dwt2(_u_plane(rgb, rows, cols), "haar")
    bits = [int(b) for b in (_soft_bits(low, CODE_BITS) < 0)]
    return bits == code_bits(output_id)


def main(images: int, unmarked: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    read = {name: 0 for name, _ in EDITS}
    baseline = {name: 0 for name, _ in EDITS}
    wrong = 0
    per_kind: dict[str, list[int]] = {kind: [0, 0] for kind, _ in KINDS}
    per_size_q60: dict[tuple[int, int], list[int]] = {size: [0, 0] for size in SIZES}
    weakest: dict[str, float] = {name: 1.0 for name, _ in EDITS}
    for n in range(images):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        output_id = new_output_id()
        marked = embed_watermark(make(w, h, rng), output_id)
        for name, edit in EDITS:
            edited = edit(marked)
            reading = inspect_watermark(edited)
            if reading is not None and reading.output_id == output_id:
                read[name] += 1
                weakest[name] = min(weakest[name], reading.strength)
                per_kind[kind][0] += 1
            elif reading is not None:
                wrong += 1
            per_kind[kind][1] += 1
            if name == "jpeg-q60":
                per_size_q60[(w, h)][1] += 1
                per_size_q60[(w, h)][0] += reading is not None and reading.output_id == output_id
            baseline[name] += read_without_correction(edited, output_id)

    false_positives = 0
    checked = 0
    for n in range(unmarked):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        original = make(w, h, rng)
        for candidate in (png(original), jpeg(original, 75)):
            checked += 1
            false_positives += inspect_watermark(candidate) is not None
    for colour in range(0, 256, 15):  # flat images: all votes alike
        for candidate in (Image.new("RGB", (512, 512), (colour, 255 - colour, colour // 2)),):
            checked += 1
            false_positives += inspect_watermark(candidate) is not None

    print(f"watermark robustness: {images} marked images, {checked} unmarked reads")
    print(f"{'edit':26} {'with ECC':>9} {'without':>9} {'ratio':>7} {'weakest':>8}")
    for name, _ in EDITS:
        with_ecc, without = read[name] / images, baseline[name] / images
        ratio = with_ecc / without if without else float("inf")
        print(f"{name:26} {with_ecc:9.1%} {without:9.1%} {ratio:7.2f} {weakest[name]:8.2f}")
    print("recovery by kind of image (all edits):")
    for kind, (good, total) in per_kind.items():
        print(f"  {kind:20} {good / total:7.1%}")
    print("JPEG q60 recovery by size:")
    for (w, h), (good, total) in per_size_q60.items():
        print(f"  {w}x{h:<14} {good / total:7.1%}")
    print(f"read as a different id: {wrong} of {images * len(EDITS)}")
    print(f"false positives: {false_positives} of {checked} unmarked reads")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--unmarked", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    main(args.images, args.unmarked, args.seed)
