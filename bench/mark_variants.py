"""Marks of other coarseness, strength and code, read at the true placement (an oracle).

What holds a mark back on a 256 px output shrunk and sent through JPEG twice: the
reader's search, or the mark itself? Here each variant is embedded in the same
pictures, put through the same edits (JPEG q60, a crop keeping 75% through Telegram,
and the three rows short at 256 px: rescale + Telegram, screenshot, screenshot +
Telegram), brought back to the marked grid with the edit's true scale and offset, and
its 128 code bits read there, plain and under each of the reader's unsharp masks (the
fewest wrong bits counts). No search: what fails here, no search can read.

Variants: blocks of 8 px (as outputs carry), 16 px (the mark put on the U plane at
half size, so a quarter as many blocks: a 16x16-block tile, each code bit twice) or 12 px
(on the U plane reduced to two thirds, 168 px: a 21x21-block tile, each code bit 3 or 4
times, or version 4's 32x32-block tile, of which 21x21 blocks show; embedded through
resampling, the reduced plane of the result corrected three times towards the marked
one), and the quantiser's step (48 as outputs carry; more is stronger and costs PSNR).
For each, how many copies the Reed-Solomon code of version 3 decodes (with its
erasures) and how many have at most 10 wrong bits, which the BCH code of version 4
repairs.

Run: .venv/bin/python bench/mark_variants.py [--images 40] [--seed 6]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np
import pywt
from PIL import Image
from watermark_failed_reads import (
    Edited,
    on_marked_grid,
    rescale_telegram,
    screenshot,
    screenshot_telegram,
)
from watermark_robustness import KINDS, jpeg, psnr, telegram

from stylebot.provenance import watermark as mark
from stylebot.provenance.watermark_blocks import DEBLURS, largest_singular_fast

SIDE = 256
# name -> (pixels per block / 8, tile side in blocks, quantiser step)
VARIANTS = {
    "8 px, step 48 (outputs)": (1.0, 32, 48.0),
    "8 px, step 56": (1.0, 32, 56.0),
    "12 px, step 48": (1.5, 21, 48.0),
    # the reduced plane shows 21x21 blocks of a 32x32 tile: some bits in 0-1 blocks
    "12 px, step 48, 32-block tile": (1.5, 32, 48.0),
    "16 px, step 48": (2.0, 16, 48.0),
    "16 px, step 56": (2.0, 16, 56.0),
}
Layout = tuple[np.ndarray, np.ndarray]  # (tile of code bit indices, tile of dithers)


def layout(tile: int, step: float) -> Layout:
    rng = np.random.default_rng(99)
    bit_of = (rng.permutation(tile * tile) % mark.CODE_BITS).reshape(tile, tile)
    return bit_of, rng.uniform(0, step, (tile, tile))


def by_block(low: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table`` (a tile) read at each 4x4 block of the low band, in block order."""
    rows, cols = low.shape[0] // 4, low.shape[1] // 4
    tile = table.shape[0]
    return table[(np.arange(rows) % tile)[:, None], (np.arange(cols) % tile)[None, :]].ravel()


def reduced(plane: np.ndarray, factor: float) -> np.ndarray:
    """``plane`` (SIDE x SIDE) averaged down by ``factor`` to whole 8 px blocks (an exact
    box mean for a whole factor)."""
    side = int(SIDE / factor) // 8 * 8
    small: np.ndarray = cv2.resize(plane, (side, side), interpolation=cv2.INTER_AREA)
    return small


def enlarged(change: np.ndarray, factor: float) -> np.ndarray:
    """A change of the reduced plane spread back over SIDE x SIDE pixels."""
    if factor == int(factor):
        return np.kron(change, np.ones((int(factor), int(factor))))
    large: np.ndarray = cv2.resize(change, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
    return large


def embed(
    image: Image.Image, bits: np.ndarray, factor: float, step: float, tiles: Layout
) -> Image.Image:
    rgb = np.asarray(image.convert("RGB"))
    u = mark._u_plane(rgb, SIDE, SIDE)
    plane = reduced(u, factor)
    low, details = pywt.dwt2(plane, "haar")
    block_bits = bits[by_block(low, tiles[0])]
    mark._quantise_blocks(low, block_bits, by_block(low, tiles[1]), step)
    target = pywt.idwt2((low, details), "haar")
    du = enlarged(target - plane, factor)
    for _ in range(3):  # resampling is not exact: move the reduced plane onto the target
        du += enlarged(target - reduced(u + du, factor), factor)
    return Image.fromarray(mark.with_u_changed(rgb, du))


def soft_bits(
    u: np.ndarray, factor: float, step: float, tiles: Layout, inside: np.ndarray
) -> np.ndarray:
    """Each code bit's mean vote over the blocks wholly inside the copy."""
    low, _details = pywt.dwt2(reduced(u, factor), "haar")
    blocks, _area = mark._blocks(low)
    votes = np.sin(2 * np.pi * (largest_singular_fast(blocks) - by_block(low, tiles[1])) / step)
    covered = reduced(inside, factor)
    half = covered.shape[0] // 2
    seen, _ = mark._blocks(covered.reshape(half, 2, half, 2).mean(axis=(1, 3)))
    weights = seen.reshape(len(seen), -1).min(axis=1)
    which = by_block(low, tiles[0])
    counts = np.bincount(which, weights, mark.CODE_BITS)
    return np.bincount(which, votes * weights, mark.CODE_BITS) / np.maximum(counts, 1)


def cropped_telegram(image: Image.Image, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A window keeping 75% of the area sent through Telegram, put back in place, and
    which pixels it covers."""
    keep_w = float(rng.uniform(0.75, 1.0))
    cw, ch = round(SIDE * keep_w), round(SIDE * 0.75 / keep_w)
    left, top = int(rng.integers(0, SIDE - cw + 1)), int(rng.integers(0, SIDE - ch + 1))
    sent = telegram(image.crop((left, top, left + cw, top + ch)))
    placed, inside = np.zeros((SIDE, SIDE, 3), np.uint8), np.zeros((SIDE, SIDE))
    placed[top : top + ch, left : left + cw] = np.asarray(sent)
    inside[top : top + ch, left : left + cw] = 1
    return placed, inside


def jpeg_q60(image: Image.Image, rng: np.random.Generator) -> Edited:
    return jpeg(image, 60), 1.0, 0.0


EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Edited]] = {
    "jpeg-q60": jpeg_q60,
    "rescale-0.5..2+telegram": rescale_telegram,
    "screenshot": screenshot,
    "screenshot+telegram": screenshot_telegram,
}


def main(images: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    whole = np.ones((SIDE, SIDE))
    # (variant, edit) -> [Reed-Solomon decoded, at most 10 bits wrong, copies]
    tally: dict[tuple[str, str], list[int]] = {}
    quality: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for n in range(images):
        picture = KINDS[n % len(KINDS)][1](SIDE, SIDE, rng)
        output_id = rng.bytes(6).hex()
        bits = np.array(mark.code_bits(output_id, 3), dtype=np.float64)
        edit_seed = int(rng.integers(1 << 30))
        for name, (factor, tile, step) in VARIANTS.items():
            tiles = layout(tile, step)
            marked = embed(picture, bits, factor, step, tiles)
            quality[name].append(psnr(picture, marked))
            edit_rng = np.random.default_rng(edit_seed)  # the same edits for each variant
            copies = {"crop-75%+telegram": cropped_telegram(marked, edit_rng)}
            for edit_name, edit in EDITS.items():
                edited, scale, offset = edit(marked, edit_rng)
                copies[edit_name] = (on_marked_grid(edited, (SIDE, SIDE), scale, offset), whole)
            for edit_name, (pixels, inside) in copies.items():
                u = mark._u_plane(pixels, SIDE, SIDE)
                sharpened = [
                    u + a * (u - cv2.GaussianBlur(u, (0, 0), sigma)) for sigma, a in DEBLURS
                ]
                decoded, fewest = False, mark.CODE_BITS
                for plane in [u, *sharpened]:
                    soft = soft_bits(plane, factor, step, tiles, inside)
                    fewest = min(fewest, int(np.sum((soft < 0) != (bits > 0.5))))
                    reading = mark._decode(soft, float(np.mean(np.abs(soft))), 3)
                    decoded = decoded or (reading is not None and reading.output_id == output_id)
                cell = tally.setdefault((name, edit_name), [0, 0, 0])
                cell[0] += decoded
                cell[1] += fewest <= 10
                cell[2] += 1
    print(f"{images} pictures at {SIDE} px, read at the true placement")
    print("| variant | PSNR | edit | Reed-Solomon | at most 10 bits wrong (BCH) |")
    print("|---|---:|---|---:|---:|")
    for name in VARIANTS:
        for (variant, edit_name), (by_rs, by_bch, read) in tally.items():
            if variant == name:
                print(
                    f"| {name} | {np.mean(quality[name]):.1f} dB | {edit_name} "
                    f"| {by_rs}/{read} | {by_bch}/{read} |"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    main(args.images, args.seed)
