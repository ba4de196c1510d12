"""/verify on 256 px outputs after the three edits that fell short of 95% in
``watermark_robustness.py`` (a rescale in [0.5, 2] then Telegram, a screenshot, a
screenshot then Telegram), with more pictures than that bench gives the size.

Each output is marked; each copy is read by the mark, and looked up by likeness over a
store holding every output of the run (as ``watermark_robustness.py``'s second pass);
when the likeness places the copy on an output without claiming it, the copy is
checked for that output's mark where it was placed (``watermark_at_placement.py``). A
copy is traced, as /verify traces it, when the mark names its output, else the likeness,
else the mark at the likeness's placement. A read naming another output is printed as a
false claim. Where a copy was placed without a likeness, ``--others`` random ids are
checked too: how many of their bits agree by chance (the check needs 100 of 128). Each
miss is printed, so a change can be checked against the same copies (same seed).

Run: .venv/bin/python bench/small_copies.py [--images 40] [--seed 5150]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

import numpy as np
from PIL import Image
from resemblance_lookup import Blobs, Outputs, Records, encoded, output_record, traced
from watermark_robustness import KINDS, rescale, screenshot, telegram

from stylebot.bot.core.fingerprints import fingerprint_of_image
from stylebot.bot.core.resemblance import Placed
from stylebot.provenance.watermark import embed_watermark, inspect_watermark
from stylebot.provenance.watermark_at_placement import LOOKS, MIN_AGREEING, agreeing_bits

EDITS = [
    ("rescale 0.5-2x + Telegram", lambda i, r: telegram(rescale(i, float(r.uniform(0.5, 2))))),
    ("screenshot", screenshot),
    ("screenshot + Telegram", lambda i, r: telegram(screenshot(i, r))),
]


def by_chance(placed: Placed, ids: np.random.Generator, others: int) -> list[int]:
    """The most agreeing bits of ``others`` random ids (none an output's) at a placement."""
    with Image.open(io.BytesIO(placed.png)) as image:
        rgb = np.asarray(image.convert("RGB"))
    where = placed.alignment
    scale, corner = (where.scale_x, where.scale_y), (where.left, where.top)
    return [
        agreeing_bits(rgb, ids.bytes(6).hex(), placed.output_size, scale, corner)
        for _ in range(others)
    ]


async def main(images: int, seed: int, others: int) -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    ids = np.random.default_rng(seed + 1)
    made: list[tuple[str, Image.Image]] = []
    copies: list[tuple[int, str, str, Image.Image]] = []
    for n in range(images):
        kind, make = KINDS[n % len(KINDS)]
        output_id = ids.bytes(6).hex()
        marked = embed_watermark(make(256, 256, rng), output_id)
        made.append((output_id, marked))
        for name, edit in EDITS:
            copies.append((n, kind, name, edit(marked, rng)))
    records, blobs = Records(Outputs()), Blobs()
    for n, (output_id, marked) in enumerate(made):
        record = output_record(n, fingerprint_of_image(marked), output_id)
        records.outputs.by_id[record.id] = record
        blobs.data[record.blob_key or ""] = encoded(marked)
    tally = {name: [0, 0, 0, 0, 0] for name, _ in EDITS}  # mark, likeness, placed, traced, tried
    false_claims = 0
    chance: list[int] = []
    for n, kind, name, copy in copies:
        output_id = made[n][0]
        reading = inspect_watermark(copy)
        by_mark = None if reading is None else reading.output_id
        found = await traced(records, blobs, copy)
        answer = by_mark or found.likeness or found.by_placement
        cell = tally[name]
        cell[0] += by_mark == output_id
        cell[1] += found.likeness == output_id
        cell[2] += found.by_placement == output_id
        cell[3] += answer == output_id
        cell[4] += 1
        if answer != output_id:
            print(f"missed: {name} of picture {n} ({kind}, {copy.width}x{copy.height})")
        for placed in found.placed:  # other outputs' bits where this copy was placed
            chance.extend(by_chance(placed, ids, others))
        reads = (("mark", by_mark), ("likeness", found.likeness), ("placed", found.by_placement))
        for how, read in reads:
            if read not in (None, output_id):
                false_claims += 1
                print(f"FALSE CLAIM: {name} of picture {n} ({kind}): {how} names {read}")
    print(f"/verify at 256 px: {images} outputs, seed {seed}")
    print("| edit | mark | likeness | mark at the likeness's placement | /verify |")
    print("|---|---:|---:|---:|---:|")
    for name, (mark, likeness, placed, answer, tried) in tally.items():
        counts = " | ".join(f"{count}/{tried}" for count in (mark, likeness, placed, answer))
        print(f"| {name} | {counts} |")
    print(f"false claims: {false_claims}")
    if chance:
        print(
            f"other outputs' bits at the likeness's placements: {len(chance)} checks of "
            f"{LOOKS} looks, most agreeing {max(chance)} of 128 (mean {np.mean(chance):.1f}; "
            f"{sum(a >= 90 for a in chance)} at 90 or more; a mark needs {MIN_AGREEING})"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5150)
    parser.add_argument(
        "--others", type=int, default=20, help="random ids checked where each copy was placed"
    )
    args = parser.parse_args()
    asyncio.run(main(args.images, args.seed, args.others))
