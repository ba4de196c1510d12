"""False claims of the watermark reader: how many unmarked pictures it reads as marked.

Every picture here carries no stylebot mark: the varied kinds and sizes of
``watermark_robustness.py`` (scenes, photo-like noise, illustrations, a subject on a
plain background, gradients), plain single-colour pictures, and each of them passed
through one of that script's edits (JPEG, Telegram, crops, rescales, screenshots). Any
read that names an output id is a false claim; each one is printed with the picture it
came from. A progress line every 50 reads keeps the figures of a run that is cut short.

Run: .venv/bin/python bench/watermark_false_claims.py [--reads 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image
from watermark_robustness import EDITS, KINDS, SIZES, png

from stylebot.provenance.watermark import inspect_watermark


def unmarked_pictures(count: int, rng: np.random.Generator) -> Iterator[tuple[str, Image.Image]]:
    """`count` varied unmarked pictures, one in ten a plain colour, each with a label."""
    for n in range(count):
        w, h = SIZES[n % len(SIZES)]
        if n % 10 == 9:
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            yield f"plain{colour} {w}x{h}", Image.new("RGB", (w, h), colour)
            continue
        kind, make = KINDS[(n // len(SIZES)) % len(KINDS)]
        edit_name, edit = EDITS[n % len(EDITS)]
        original = make(w, h, rng)
        picture = png(original) if n % 2 else edit(original, rng)
        yield f"{kind} {w}x{h} {'png' if n % 2 else edit_name}", picture


def main(reads: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    claims: list[str] = []
    slowest = 0.0
    for n, (label, picture) in enumerate(unmarked_pictures(reads, rng), start=1):
        began = time.perf_counter()
        reading = inspect_watermark(picture)
        slowest = max(slowest, time.perf_counter() - began)
        if reading is not None:
            claims.append(f"{label}: read as {reading.output_id}")
            print(f"FALSE CLAIM: {claims[-1]}", flush=True)
        if n % 50 == 0:
            print(f"{n} reads, {len(claims)} false claims", flush=True)
    print(f"false claims: {len(claims)} of {reads} unmarked reads")
    print(f"slowest read {slowest:.1f} s; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.reads, args.seed)
