"""Watermark robustness: how often the output id is read back after common edits, and how
often an unmarked image is read as marked.

Images are made here, varied on purpose: smooth colour fields with grain, multi-octave
"photo" noise, flat illustrations (shapes and lines on plain backgrounds), a subject on a
white or black background, gradients; at 256x256, 512x512, 768x512, 512x768 and 1024x1024.

Edits: PNG (none), JPEG q90/q75/q60, resize to half and back (bicubic), the same then
JPEG q75, Telegram's photo path (long side at most 1280 px, JPEG q87), and the geometry
of issue 14: 10% cropped off one side, a random crop keeping 75% of the area, a rescale
to 0.7x and to a random factor in [0.5, 2] (not undone), a screenshot (random rescale in
[0.6, 1.6], a 2-6 px border, then PNG or JPEG q80), and the last three through Telegram.

Each marked image is read three ways, in the same run (columns of the table):

* ``v4``: the mark outputs carry now (tiled layout, BCH code), read by
  ``inspect_watermark``: the search over crops and rescales;
* ``v4 no-rescale``: the same mark, searched over crops only (the rescale step off);
* ``v3``: the same image marked with the tiled layout and the Reed-Solomon code of
  December 2026 (the BCH code's part), read by ``inspect_watermark``;
* ``v2``: the same image marked with the old block-order mark and read as before;
* ``likeness``: /verify's second line alone, as if the mark were gone: the copy looked up
  by fingerprint and compared region by region (``stylebot.bot.core.resemblance``, over a
  store holding every marked output of the run, as ``resemblance_lookup.py`` sets it up);
* ``traced``: what /verify tells a user, the mark's output (``v4``) or, when no mark is
  read, the likeness's, or else the output whose mark the copy carries where the
  likeness placed it without claiming it (``watermark_at_placement.py``).

A read naming another output, by any of these, is a false claim: each is printed. The
likeness columns are a second pass over the same pictures and edits (the same seed),
with every output of the run in the store. Unmarked reads (the false-claim count) use
the full reader. PSNR is of the marked image against the unmarked one.

Run: .venv/bin/python bench/watermark_robustness.py [--images 300] [--unmarked 300]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stylebot.provenance.tiled_watermark import quantise_tiled, search_tiled
from stylebot.provenance.watermark import (
    WatermarkReading,
    _embed,
    _quantise,
    _read_block_order,
    embed_watermark,
    inspect_watermark,
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


def crop_one_side(image: Image.Image) -> Image.Image:
    """10% cut off the left side."""
    w, h = image.size
    return image.crop((w // 10, 0, w, h))


def crop_to_three_quarters(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random window keeping 75% of the area, of random proportions and place."""
    w, h = image.size
    keep_w = float(rng.uniform(0.75, 1.0))
    cw, ch = round(w * keep_w), round(h * 0.75 / keep_w)
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((left, top, left + cw, top + ch))


def rescale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    size = (round(w * factor), round(h * factor))
    return image.resize(size, Image.Resampling.BICUBIC)


def screenshot(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shown at another zoom, captured with a few pixels of window around it."""
    shown = rescale(image, float(rng.uniform(0.6, 1.6)))
    border = int(rng.integers(2, 7))
    grey = int(rng.integers(0, 256))
    framed = Image.new("RGB", (shown.width + 2 * border, shown.height + 2 * border), (grey,) * 3)
    framed.paste(shown, (border, border))
    return jpeg(framed, 80) if rng.random() < 0.5 else png(framed)


Edit = Callable[[Image.Image, np.random.Generator], Image.Image]
EDITS: list[tuple[str, Edit]] = [
    ("png", lambda i, r: png(i)),
    ("jpeg-q90", lambda i, r: jpeg(i, 90)),
    ("jpeg-q75", lambda i, r: jpeg(i, 75)),
    ("jpeg-q60", lambda i, r: jpeg(i, 60)),
    ("half-and-back", lambda i, r: half_and_back(i)),
    ("half-and-back+jpeg-q75", lambda i, r: jpeg(half_and_back(i), 75)),
    ("telegram", lambda i, r: telegram(i)),
    ("crop-10%-one-side", lambda i, r: png(crop_one_side(i))),
    ("crop-to-75%-area", lambda i, r: png(crop_to_three_quarters(i, r))),
    ("rescale-0.7", lambda i, r: png(rescale(i, 0.7))),
    ("rescale-0.5..2", lambda i, r: png(rescale(i, float(r.uniform(0.5, 2.0))))),
    ("screenshot", screenshot),
    ("crop-75%+telegram", lambda i, r: telegram(crop_to_three_quarters(i, r))),
    ("rescale-0.5..2+telegram", lambda i, r: telegram(rescale(i, float(r.uniform(0.5, 2))))),
    ("screenshot+telegram", lambda i, r: telegram(screenshot(i, r))),
]
METHODS = ["v4", "v4 no-rescale", "v3", "v2"]
MARKS = ["v4", "v3", "v2"]
#: The likeness alone, and /verify's answer: the mark's, else the likeness's.
TRACED = ["likeness", "traced"]


def embed_as(mark: str, image: Image.Image, output_id: str) -> Image.Image:
    """``image`` marked with the current mark (v4) or an earlier one (v3, v2)."""
    if mark == "v4":
        return embed_watermark(image, output_id)
    if mark == "v3":
        return _embed(image, output_id, 3, quantise_tiled)
    return _embed(image, output_id, 2, _quantise)


def read_as(method: str, image: Image.Image) -> WatermarkReading | None:
    rgb = np.asarray(image.convert("RGB"))
    if method in ("v4", "v3"):
        return inspect_watermark(image)
    if method == "v4 no-rescale":
        return search_tiled(rgb, rescales=False)
    return _read_block_order(rgb)


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255.0**2 / np.mean(diff**2)))


def main(images: int, unmarked: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Ids from their own stream: the same marks in two runs of one seed (before and after
    # a change), as in watermark_failed_reads.py.
    ids = np.random.default_rng(seed + 1)
    started = time.perf_counter()
    # (method, edit, size label, kind) -> [traced, tried]
    tally: dict[tuple[str, str, str, str], list[int]] = {}
    wrong = {method: 0 for method in METHODS + TRACED}
    quality: dict[str, list[float]] = {mark: [] for mark in MARKS}
    made: list[tuple[str, Image.Image]] = []  # each output's id and marked image
    marked_reads: dict[tuple[int, str], str | None] = {}  # (image, edit) -> v4's id
    copies: dict[tuple[int, str], int] = {}  # (image, edit) -> hash of the v4 copy's pixels
    for n in range(images):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        size = "256" if max(w, h) == 256 else "512+"
        output_id = ids.bytes(6).hex()
        original = make(w, h, rng)
        marked = {mark: embed_as(mark, original, output_id) for mark in MARKS}
        for mark in MARKS:
            quality[mark].append(psnr(original, marked[mark]))
        made.append((output_id, marked["v4"]))
        for name, edit in EDITS:
            state = rng.bit_generator.state  # the same edit for every mark
            edited = {}
            for mark in MARKS:
                rng.bit_generator.state = state
                edited[mark] = edit(marked[mark], rng)
            for method in METHODS:
                reading = read_as(method, edited[method.split()[0]])
                cell = tally.setdefault((method, name, size, kind), [0, 0])
                cell[1] += 1
                if method == "v4":
                    marked_reads[(n, name)] = None if reading is None else reading.output_id
                    copies[(n, name)] = hash(edited["v4"].tobytes())
                if reading is not None and reading.output_id == output_id:
                    cell[0] += 1
                elif reading is not None:
                    wrong[method] += 1
    false_traces = asyncio.run(_traced_by_likeness(made, marked_reads, copies, seed, tally, wrong))

    false_claims = 0
    checked = 0
    slowest = 0.0
    for n in range(unmarked):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        original = make(w, h, rng)
        edit = EDITS[n % len(EDITS)][1]
        for candidate in (png(original), edit(original, rng)):
            checked += 1
            began = time.perf_counter()
            false_claims += inspect_watermark(candidate) is not None
            slowest = max(slowest, time.perf_counter() - began)
    for colour in range(0, 256, 15):  # flat images: all votes alike
        checked += 1
        flat = Image.new("RGB", (512, 512), (colour, 255 - colour, colour // 2))
        false_claims += inspect_watermark(flat) is not None

    print(f"watermark robustness: {images} marked images, {checked} unmarked reads")
    for mark in MARKS:
        print(f"PSNR {mark}: mean {np.mean(quality[mark]):.1f} dB, min {min(quality[mark]):.1f} dB")
    print()
    print(_table(tally, "size", ["256", "512+"], METHODS + TRACED))
    print()
    print(_table(tally, "kind", [kind for kind, _ in KINDS], ["v4", *TRACED]))
    print()
    print(f"read as a different id: {wrong} (of {images * len(EDITS)} reads per method)")
    for line in false_traces:
        print(f"FALSE CLAIM: {line}")
    print(f"false claims: {false_claims} of {checked} unmarked reads (slowest {slowest:.1f} s)")
    print(f"({time.perf_counter() - started:.0f} s)")


async def _traced_by_likeness(
    made: list[tuple[str, Image.Image]],
    marked_reads: dict[tuple[int, str], str | None],
    copies: dict[tuple[int, str], int],
    seed: int,
    tally: dict[tuple[str, str, str, str], list[int]],
    wrong: dict[str, int],
) -> list[str]:
    """The second pass: the same edited copies (the generator replayed from the seed)
    looked up over a store of every output of the run; tallied as ``likeness`` and as
    ``traced`` (as /verify answers). Returns a line per read naming another output."""
    # Imported here: resemblance_lookup imports this module's pictures and edits.
    from resemblance_lookup import Blobs, Outputs, Records, encoded, output_record, traced

    from stylebot.bot.core.fingerprints import fingerprint_of_image

    records, blobs = Records(Outputs()), Blobs()
    for n, (output_id, marked) in enumerate(made):
        record = output_record(n, fingerprint_of_image(marked), output_id)
        records.outputs.by_id[record.id] = record
        blobs.data[record.blob_key or ""] = encoded(marked)
    rng = np.random.default_rng(seed)
    false_traces: list[str] = []
    for n, (output_id, marked) in enumerate(made):
        kind, make = KINDS[n % len(KINDS)]
        w, h = SIZES[(n // len(KINDS)) % len(SIZES)]
        size = "256" if max(w, h) == 256 else "512+"
        make(w, h, rng)  # the first pass's draws, in its order
        for name, edit in EDITS:
            copy = edit(marked, rng)
            assert hash(copy.tobytes()) == copies[(n, name)], "the replay drew other edits"
            found = await traced(records, blobs, copy)
            by_likeness, by_placement = found.likeness, found.by_placement
            by_mark = marked_reads[(n, name)]
            answer = by_mark or by_likeness or by_placement
            for method, read in (("likeness", by_likeness), ("traced", answer)):
                cell = tally.setdefault((method, name, size, kind), [0, 0])
                cell[1] += 1
                cell[0] += read == output_id
                wrong[method] += read not in (None, output_id)
            reads = (("mark", by_mark), ("likeness", by_likeness), ("placed", by_placement))
            for how, read in reads:
                if read not in (None, output_id):
                    false_traces.append(f"{name} of {kind} {w}x{h} {output_id}: {how} {read}")
    return false_traces


def _table(
    tally: dict[tuple[str, str, str, str], list[int]],
    by: str,
    groups: list[str],
    methods: list[str],
) -> str:
    """Markdown: one row per edit, one column per method and group (size or kind)."""
    columns = [(method, group) for method in methods for group in groups]
    lines = [
        "| edit | " + " | ".join(f"{m} {g}" for m, g in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, _ in EDITS:
        cells = []
        for method, group in columns:
            good = total = 0
            for (m, e, size, kind), (traced, tried) in tally.items():
                if m == method and e == name and (size if by == "size" else kind) == group:
                    good, total = good + traced, total + tried
            cells.append(f"{good / total:.0%}" if total else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--unmarked", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    main(args.images, args.unmarked, args.seed)
