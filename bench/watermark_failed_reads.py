"""Why reads of the mark fail: the search, or the mark's strength.

The rows of ``watermark_robustness.py`` that fall short (a rescale through Telegram's
photo path, a screenshot, a screenshot through Telegram) are made again here with their
parameters kept. Each read that fails is tried once more with the picture brought back
to the true scale and offset (an oracle the reader does not have) and searched over
crops only: if the mark reads there, the search was at fault ("search"); if not, the
mark is too weak after that edit ("strength"). Per read it also prints how far the
nearest of the reader's scale candidates is from the truth.

The edits draw their parameters as ``watermark_robustness.py`` does, but the pictures
and ids come from their own random streams (ids from ``seed + 1``), so that two runs of
one seed, before and after a change to the reader, read the same pictures.

Run: .venv/bin/python bench/watermark_failed_reads.py [--images 30] [--seed 2026] [--side 256]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from PIL import Image
from watermark_robustness import KINDS, SIZES, jpeg, png, rescale, telegram

from stylebot.provenance.tiled_watermark import search_tiled
from stylebot.provenance.watermark import embed_watermark, inspect_watermark
from stylebot.provenance.watermark_at_placement import on_output_grid
from stylebot.provenance.watermark_scale import rescale_candidates

# An edit returns the edited picture, its scale against the marked one, and the offset
# (edited pixels) of the marked picture's top left corner in it.
Edited = tuple[Image.Image, float, float]


def screenshot(image: Image.Image, rng: np.random.Generator) -> Edited:
    """As ``watermark_robustness.screenshot``: rescale, a 2-6 px frame, PNG or JPEG q80."""
    shown = rescale(image, float(rng.uniform(0.6, 1.6)))
    border = int(rng.integers(2, 7))
    grey = int(rng.integers(0, 256))
    framed = Image.new("RGB", (shown.width + 2 * border, shown.height + 2 * border), (grey,) * 3)
    framed.paste(shown, (border, border))
    saved = jpeg(framed, 80) if rng.random() < 0.5 else png(framed)
    return saved, shown.width / image.width, float(border)


def rescale_telegram(image: Image.Image, rng: np.random.Generator) -> Edited:
    sent = telegram(rescale(image, float(rng.uniform(0.5, 2))))
    return sent, sent.width / image.width, 0.0


def screenshot_telegram(image: Image.Image, rng: np.random.Generator) -> Edited:
    shot, scale, border = screenshot(image, rng)
    sent = telegram(shot)
    ratio = sent.width / shot.width
    return sent, scale * ratio, border * ratio


EDITS: dict[str, Callable[[Image.Image, np.random.Generator], Edited]] = {
    "rescale-0.5..2+telegram": rescale_telegram,
    "screenshot": screenshot,
    "screenshot+telegram": screenshot_telegram,
}


def read_at_true_scale(
    edited: Image.Image, size: tuple[int, int], scale: float, offset: float
) -> str | None:
    """The id read once the picture is brought back onto the marked grid exactly."""
    reading = search_tiled(on_marked_grid(edited, size, scale, offset), rescales=False)
    return reading.output_id if reading is not None else None


def on_marked_grid(
    edited: Image.Image, size: tuple[int, int], scale: float, offset: float
) -> np.ndarray:
    """The edited picture brought back onto the marked grid (RGB, ``size``): marked pixel
    x sits at (x + 0.5) * scale + offset - 0.5 in the edited picture."""
    pixels = np.asarray(edited.convert("RGB"))
    return on_output_grid(pixels, (scale, scale), (offset / scale,) * 2, size)


def main(images: int, seed: int, side: int | None) -> None:
    rng = np.random.default_rng(seed)
    ids = np.random.default_rng(seed + 1)
    tally: dict[tuple[str, str], dict[str, int]] = {}
    for n in range(images):
        kind, make = KINDS[n % len(KINDS)]
        w, h = (side, side) if side else SIZES[(n // len(KINDS)) % len(SIZES)]
        output_id = ids.bytes(6).hex()
        marked = embed_watermark(make(w, h, rng), output_id)
        for name, edit in EDITS.items():
            edited, scale, offset = edit(marked, rng)
            reading = inspect_watermark(edited)
            candidates = rescale_candidates(np.asarray(edited.convert("RGB")))
            nearest = min(abs(candidate / scale - 1) for candidate in candidates)
            if reading is not None and reading.output_id == output_id:
                outcome = "traced"
            elif reading is not None:
                outcome = "DIFFERENT ID"
            elif read_at_true_scale(edited, (w, h), scale, offset) == output_id:
                outcome = "search"
            else:
                outcome = "strength"
            size = "256" if max(w, h) == 256 else "512+"
            cell = tally.setdefault((name, size), {})
            cell[outcome] = cell.get(outcome, 0) + 1
            print(
                f"{n:3d} {kind:16s} {w}x{h} {name:24s} scale {scale:.4f} "
                f"nearest candidate {nearest:.2%} -> {outcome}",
                flush=True,
            )
    print()
    for (name, size), outcomes in sorted(tally.items()):
        print(f"{name:24s} {size:>4s} px: {outcomes}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--side", type=int, help="every picture this size (default: the mix)")
    args = parser.parse_args()
    main(args.images, args.seed, args.side)
