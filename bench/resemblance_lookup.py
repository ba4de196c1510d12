"""The second line of /verify: unmarked copies traced by fingerprint ("resembles"), and
false likenesses.

Stored outputs are made here (the kinds and sizes of ``watermark_robustness.py``) and
kept without a mark, as if each copy's mark had been destroyed; their fingerprints go
into the band index exactly as the core writes them. Then:

* copies: each stored output after the edits people make (JPEG, Telegram, rescales not
  undone, screenshots, crops) is looked up; the share traced to its output is printed per
  edit, and any copy traced to another output is a false claim;
* unrelated pictures: varied new pictures (plain colours, gradients, scenes,
  illustrations, with and without those edits), and near-duplicates of stored outputs
  (the same picture with a small logo on it, a quarter of another picture blended in, or
  a banner over a fifth of it): none may be said to resemble anything, nor to carry
  the mark of an output it was placed on (the stored outputs carry none; /verify checks
  for it where the likeness places a picture without claiming it).

The lookup is the core's own (``stylebot.bot.core.resemblance``) over an in-memory index
with the store's semantics (``outputs_with_bands``).

Run: .venv/bin/python bench/resemblance_lookup.py [--outputs 25] [--unrelated 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from PIL import Image, ImageDraw
from watermark_robustness import EDITS, KINDS, SIZES, jpeg, rescale, screenshot, telegram

from stylebot.bootstrap import PngWatermarkReader
from stylebot.bot.core.fingerprints import fingerprint_of_png
from stylebot.bot.core.hash_bands import hash_bands
from stylebot.bot.core.images import ImageLimits, normalize_for_reading
from stylebot.bot.core.model import Output
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.bot.core.resemblance import Placed, carrying_its_mark, resembled_output

COPY_EDITS = [
    ("jpeg-q60", lambda i, r: jpeg(i, 60)),
    ("telegram", lambda i, r: telegram(i)),
    ("rescale-0.5..2+jpeg-q80", lambda i, r: jpeg(rescale(i, float(r.uniform(0.5, 2))), 80)),
    ("rescale-0.5..2+telegram", lambda i, r: telegram(rescale(i, float(r.uniform(0.5, 2))))),
    ("screenshot", screenshot),
    ("screenshot+telegram", lambda i, r: telegram(screenshot(i, r))),
    *[(name, edit) for name, edit in EDITS if name.startswith("crop")],
]


def encoded(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Outputs:
    """Stored outputs with the store's lookup semantics (stylebot.storage.outputs)."""

    by_id: dict[str, Output] = field(default_factory=dict)

    async def outputs_with_bands(self, probes: Sequence[tuple[int, str]]) -> list[Output]:
        wanted = set(probes)
        return [
            o
            for o in self.by_id.values()
            if o.fingerprint is not None
            and not wanted.isdisjoint(hash_bands(PerceptualHash.from_hex(o.fingerprint)))
        ]


@dataclass
class Records:
    outputs: Outputs


@dataclass
class Blobs:
    data: dict[str, bytes] = field(default_factory=dict)

    async def get(self, key: str) -> bytes:
        return self.data[key]


def output_record(n: int, fingerprint: str | None, output_id: str) -> Output:
    """The n-th stored output, under an id a mark can carry."""
    return Output(
        id=output_id,
        job_id="job",
        user_id=1,
        style_id=None,
        prompt="p",
        negative_prompt="",
        seed=n,
        steps=4,
        guidance=7.5,
        width=0,
        height=0,
        blob_key=f"blob{n}",
        created_at=datetime.now(UTC),
        fingerprint=fingerprint,
    )


@dataclass(frozen=True)
class Traced:
    """What /verify finds for a copy whose mark it could not read blind."""

    likeness: str | None  # the output the copy resembles
    by_placement: str | None  # else the output whose mark it carries where it was placed
    placed: list[Placed]  # the outputs it was placed on without a likeness


async def traced(records: Records, blobs: Blobs, picture: Image.Image) -> Traced:
    normal = normalize_for_reading("copy.png", encoded(picture), ImageLimits(), 1024)
    lookup = await resembled_output(records, blobs, normal)  # type: ignore[arg-type]
    if lookup.resemblance is not None:
        return Traced(lookup.resemblance.output.id, None, [])
    placed = await carrying_its_mark(lookup, PngWatermarkReader())
    return Traced(None, None if placed is None else placed.output.id, lookup.placed)


def banner_over(image: Image.Image, share: float) -> Image.Image:
    edited = image.copy()
    top = round(edited.height * (1 - share))
    ImageDraw.Draw(edited).rectangle((0, top, edited.width, edited.height), fill="black")
    return edited


def small_logo(image: Image.Image) -> Image.Image:
    edited = image.copy()
    side = max(4, edited.width // 30)
    left, top = edited.width // 3, edited.height // 3
    ImageDraw.Draw(edited).ellipse((left, top, left + side, top + side), fill=(20, 200, 40))
    return edited


async def main(outputs: int, unrelated: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    records, blobs = Records(Outputs()), Blobs()
    originals: list[tuple[str, str, Image.Image]] = []
    for n in range(outputs):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        picture = make(w, h, rng)
        data = encoded(picture)
        # An id a mark could carry, so that /verify's check for the mark where the likeness
        # placed a picture runs too: these outputs carry none, so whatever it finds is false.
        record = output_record(n, fingerprint_of_png(data), f"{n:012x}")
        records.outputs.by_id[record.id] = record
        blobs.data[f"blob{n}"] = data
        originals.append((record.id, kind, picture))

    false_claims: list[str] = []
    checked = placed = placements = 0
    for n in range(unrelated):
        if n % 10 == 4:  # a near-duplicate of a stored output
            output_id, kind, picture = originals[n % len(originals)]
            other = KINDS[(n + 1) % len(KINDS)][1](picture.width, picture.height, rng)
            near = [
                ("small logo", small_logo(picture)),
                ("a quarter of another blended in", Image.blend(picture, other, 0.25)),
                ("banner over a fifth", banner_over(picture, 0.2)),
            ][(n // 10) % 3]
            label, candidate = f"{near[0]} on {output_id} ({kind})", near[1]
        elif n % 10 == 9:
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            label, candidate = f"plain {colour}", Image.new("RGB", (512, 512), colour)
        else:
            kind, make = KINDS[n % len(KINDS)]
            w, h = SIZES[n % len(SIZES)]
            name, edit = COPY_EDITS[n % len(COPY_EDITS)]
            label, candidate = f"{kind} {w}x{h} {name}", edit(make(w, h, rng), rng)
        checked += 1
        found = await traced(records, blobs, candidate)
        placed += bool(found.placed)
        placements += len(found.placed)
        if found.likeness is not None:
            false_claims.append(f"{label}: resembles {found.likeness}")
            print(f"FALSE LIKENESS: {false_claims[-1]}", flush=True)
        if found.by_placement is not None:  # the stored outputs carry no mark
            false_claims.append(f"{label}: carries the mark of {found.by_placement}")
            print(f"FALSE MARK: {false_claims[-1]}", flush=True)
        if checked % 100 == 0:
            print(f"{checked} unrelated pictures, {len(false_claims)} false likenesses", flush=True)

    tally: dict[str, list[int]] = {}
    wrong: list[str] = []
    for output_id, kind, picture in originals:
        for name, edit in COPY_EDITS:
            found = await traced(records, blobs, edit(picture, rng))
            cell = tally.setdefault(name, [0, 0])
            cell[1] += 1
            cell[0] += found.likeness == output_id
            print(f"{name} of {output_id} ({kind}): {found.likeness}", flush=True)
            if found.likeness not in (None, output_id):
                wrong.append(f"{name} of {output_id} ({kind}) traced to {found.likeness}")
            if found.by_placement is not None:  # the stored outputs carry no mark
                wrong.append(f"{name} of {output_id} ({kind}): mark of {found.by_placement}")

    print(f"resemblance lookup: {outputs} stored outputs (unmarked), seed {seed}")
    print("| edit of a stored output | traced |")
    print("|---|---:|")
    for name, (good, total) in tally.items():
        print(f"| {name} | {good}/{total} ({good / total:.0%}) |")
    print(f"traced to another output: {len(wrong)} {wrong}")
    print(f"false likenesses: {len(false_claims)} of {checked} unrelated pictures")
    print(
        f"checked for a stored output's mark where the likeness placed them: {placed} of "
        f"the unrelated pictures, at {placements} placements"
    )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outputs", type=int, default=25)
    parser.add_argument("--unrelated", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    asyncio.run(main(args.outputs, args.unrelated, args.seed))
