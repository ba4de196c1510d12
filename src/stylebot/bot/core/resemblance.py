"""The stored output an unmarked picture resembles: the second line of /verify, for copies
whose watermark was destroyed (heavy re-compression, a small rescale, a screenshot).

Candidates come from the fingerprint index (:mod:`.fingerprints`, bands of the
whole-picture hash), and each is compared region by region (:mod:`.aligned_match`): only
a picture whose every region matches the part of the output it shows is claimed. Two
things keep copies that people make findable:

* a screenshot's plain frame is taken off first (:mod:`.picture_frame`): left on, it moves
  the hash by up to a dozen bits and puts every whole-side fit off by its width. The
  picture as it came is looked up as well, since a subject on a plain background looks
  framed without being so;
* the closest candidate is placed on its output by the full search over scales, which
  finds a rescale the whole-side fits miss (after JPEG, at 256 px); the others by the
  whole-side fits only, which bounds the work of a lookup that brings many;
* the comparison is the likeness's (``likeness=True``): a hard edge blurred or ringing
  after re-encoding is not a difference, and the copy is also compared exactly where it
  was placed (a frame taken off took a pixel of each side with it).

Crops are not found: the whole-picture hash of a crop keeping 75-90% of an output is as
far from the output's as an unrelated picture's (docs/provenance.md).

The outputs a picture was placed on but not claimed to resemble come back as well
(:class:`Placed`): /verify asks whether the picture carries one of their marks where it
sits (:func:`carrying_its_mark`), which a copy too worn to read blind often still does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from stylebot.bot.core.aligned_match import AlignedDifference, compare_aligned_png, snap_edge
from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.fingerprints import RESEMBLES_MAX_BITS
from stylebot.bot.core.hash_bands import band_probes
from stylebot.bot.core.images import NormalizedImage
from stylebot.bot.core.model import Output
from stylebot.bot.core.perceptual import PerceptualHash, hamming, perceptual_hash
from stylebot.bot.core.picture_frame import PLAIN_TOLERANCE, PlainFrame, plain_frame
from stylebot.bot.core.placement import Alignment
from stylebot.bot.core.ports import BlobStore, WatermarkReader
from stylebot.bot.core.stores import UnitOfWork

#: At most this many stored outputs, the closest fingerprints first, are compared with an
#: unmarked picture: each comparison decodes a stored image, and a hash shared by many
#: outputs (near-identical rerolls) must not make one /verify read all of them.
MAX_RESEMBLES_CANDIDATES = 10

#: Pixels of the picture next to a frame left out with it: JPEG's blocks (16 px for
#: colour) straddle the frame's edge, and its ringing changes the picture's outermost
#: pixels enough for the finest region check (a 4 px square 36 of 255 off, measured
#: after Telegram's q87). Left out, the copy is compared as a crop of what it shows.
_FRAME_MARGIN = 2
#: A frame whose footprint on the output (where the picture without it was placed)
#: covers at least this share of the output, and lands at least
#: :data:`_OWN_BORDER_SHARE` on pixels within :data:`_OWN_BORDER_TOLERANCE` of its
#: colour, is the output's own border (see :func:`_frame_is_the_outputs_own`). The
#: tolerance is the frame finder's own next to the picture: at 24, an output's white
#: border inside a 6 px frame of grey 230 (25 off) was taken for frame and not for the
#: output's own, and text on that border read "made by" (a hostile review).
_OWN_BORDER_AREA = 0.01
_OWN_BORDER_SHARE = 0.5
_OWN_BORDER_TOLERANCE = PLAIN_TOLERANCE
#: Outputs whose fingerprints are this many bits farther than the one a picture resembles
#: are not its twins (rerolls of one picture differ by a bit or two).
_TWIN_BITS = 2


@dataclass(frozen=True)
class Resemblance:
    """An output an unmarked picture matches region by region."""

    output: Output
    difference: AlignedDifference
    framed: bool  # a plain frame around the picture was left out to compare it


@dataclass(frozen=True)
class _Variant:
    """The picture as it came, or without its plain frame, ready to look up and compare."""

    png: bytes
    phash: PerceptualHash
    size: tuple[int, int]
    frame: PlainFrame | None = None  # the frame left out, for the picture without it
    margin: int = 0  # pixels of the picture left out with the frame

    @property
    def framed(self) -> bool:
        return self.frame is not None


def _variants(picture_png: bytes, translucent: bool) -> list[_Variant]:
    """The picture, and the picture without its plain frame when it has one (not for a
    translucent file, whose frame would look different over another background)."""
    with Image.open(io.BytesIO(picture_png), formats=["PNG"]) as image:
        variants = [_Variant(picture_png, perceptual_hash(image), image.size)]
        frame = None if translucent else plain_frame(image, _FRAME_MARGIN)
    if frame is not None:
        variants.append(_inside(frame))
    return variants


def _inside(frame: PlainFrame, margin: int = _FRAME_MARGIN) -> _Variant:
    buffer = io.BytesIO()
    frame.inside.save(buffer, "PNG")
    inside = frame.inside
    return _Variant(buffer.getvalue(), perceptual_hash(inside), inside.size, frame, margin)


def compared_without_frame(picture_png: bytes, stored: bytes) -> AlignedDifference | None:
    """The picture without its plain frame (a screenshot's window around it) compared
    with the stored output as for "made by", the margin left out with the frame counted
    as shown; None when it has no plain frame (held to the frame finder's ``strict``
    rule: a JPEG's smeared frame stays in), or what looks like one is the output's own
    border. CPU-bound."""
    # A strict frame has no JPEG smear, so none of the picture goes with it: taking 2 px
    # off hid edits along the picture's outermost pixels (a hostile review).
    with Image.open(io.BytesIO(picture_png), formats=["PNG"]) as image:
        frame = plain_frame(image, 0, strict=True)
    if frame is None:
        return None
    inside = _inside(frame, 0)
    return _without_frame(inside, compare_aligned_png(inside.png, stored), stored)


@dataclass(frozen=True)
class Placed:
    """A stored output the picture was placed on but not claimed to resemble (some
    regions differ): /verify asks the mark reader whether the picture carries that
    output's mark where it was placed."""

    output: Output
    stored: bytes  # the output's image as stored
    output_size: tuple[int, int]  # its width and height
    png: bytes  # the picture as placed (without its frame, when it had one)
    alignment: Alignment


@dataclass(frozen=True)
class Lookup:
    """What the fingerprint index and the region comparison found for a picture."""

    resemblance: Resemblance | None
    # Closest fingerprint first: the outputs placed but not claimed; or, with a
    # resemblance that has twins (see _twins), that output and its twins, placed where
    # the picture sat on it.
    placed: list[Placed]


async def resembled_output(
    records: UnitOfWork, blobs: BlobStore, picture: NormalizedImage
) -> Lookup:
    """The stored output the picture closely resembles, if any: found through the
    fingerprint index, and only claimed when its regions match as for "made by" (over
    black too, for a translucent file). At most :data:`MAX_RESEMBLES_CANDIDATES` stored
    images, the closest first, each image once. The candidates placed on their output
    but not claimed come back too, for the mark reader."""
    variants = await asyncio.to_thread(_variants, picture.data, picture.over_black is not None)
    probes = sorted({probe for v in variants for probe in band_probes(v.phash, RESEMBLES_MAX_BITS)})
    if not probes:
        return Lookup(None, [])  # a flat picture: its hash says nothing
    candidates: list[tuple[int, Output, list[_Variant]]] = []
    for output in await records.outputs.outputs_with_bands(probes):
        if output.fingerprint is None:
            continue
        stored_hash = PerceptualHash.from_hex(output.fingerprint)
        # The picture without its frame is compared also when only the picture as it
        # came (frame and all) is within the limit: taking the frame off with its margin
        # can move the hash past it (measured: 4 bits as it came, 8 without), and only
        # the picture without its frame can match the output region by region. Not the
        # other way: a picture as it came that is farther than the limit differs.
        whole_near = hamming(variants[0].phash, stored_hash) <= RESEMBLES_MAX_BITS
        near = sorted(
            (
                v
                for v in variants
                if hamming(v.phash, stored_hash) <= RESEMBLES_MAX_BITS or (v.framed and whole_near)
            ),
            key=lambda v: hamming(v.phash, stored_hash),
        )
        if near:
            candidates.append((hamming(near[0].phash, stored_hash), output, near))
    compared: set[str] = set()
    placed: list[Placed] = []
    first_placed: dict[tuple[bytes, tuple[int, int]], Alignment] = {}
    ranked = sorted(candidates, key=lambda found: found[0])
    for rank, (distance, output, near) in enumerate(ranked):
        if len(compared) >= MAX_RESEMBLES_CANDIDATES:
            break
        if output.blob_key is None or output.blob_key in compared:
            continue
        thorough = not compared  # the closest candidate only: see the module's doc
        compared.add(output.blob_key)
        stored = await stored_image(blobs, output)
        if stored is None:
            continue
        size = _size(stored)
        for variant in near:
            difference = await asyncio.to_thread(
                compare_aligned_png, variant.png, stored, thorough=thorough, likeness=True
            )
            found = difference if await _same_over_black(picture, stored, difference) else None
            if found is not None and variant.frame is not None:
                found = await asyncio.to_thread(_without_frame, variant, found, stored)
            if found is not None:
                matched = None
                if difference.alignment is not None:
                    matched = Placed(output, stored, size, variant.png, difference.alignment)
                twins = await _twins(blobs, ranked[rank + 1 :], compared, distance, matched)
                return Lookup(Resemblance(output, found, variant.framed), twins)
            alignment = difference.alignment if difference.comparable else None
            if alignment is None:
                # Only the closest candidate gets the full placement search: a later one
                # of the same size (a twin: the same picture made twice, each with its
                # own mark) is checked where the copy sat on the first.
                alignment = first_placed.get((variant.png, size))
            if alignment is not None:
                placed.append(Placed(output, stored, size, variant.png, alignment))
                first_placed.setdefault((variant.png, size), alignment)
    return Lookup(None, placed)


async def _twins(
    blobs: BlobStore,
    rest: list[tuple[int, Output, list[_Variant]]],
    compared: set[str],
    distance: int,
    matched: Placed | None,
) -> list[Placed]:
    """The output the picture resembles (``matched``, where it sat on it) and, first
    after it, the outputs of ``rest`` as close (within :data:`_TWIN_BITS`) and as large,
    placed there too: the same picture made again, each with its own mark. The likeness
    can't tell which the picture came from; their marks can (a hostile review: a worn
    copy of Carol's output "resembled" Alice's twin, with Alice's record). Empty when
    there are none."""
    if matched is None:
        return []
    twins: list[Placed] = []
    for other_distance, other, _near in rest:
        if other_distance > distance + _TWIN_BITS or len(compared) >= MAX_RESEMBLES_CANDIDATES:
            break
        if other.blob_key is None or other.blob_key in compared:
            continue
        compared.add(other.blob_key)
        stored = await stored_image(blobs, other)
        if stored is not None and _size(stored) == matched.output_size:
            twins.append(dataclasses.replace(matched, output=other, stored=stored))
    return [matched, *twins] if twins else []


def _size(png: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its header."""
    with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
        return image.size


async def carrying_its_mark(lookup: Lookup, watermark: WatermarkReader) -> Placed | None:
    """The first output the picture was placed on whose mark it carries there (closest
    fingerprint first); CPU-bound checks run in a worker thread."""
    for placed in lookup.placed:
        if await asyncio.to_thread(
            watermark.carries, placed.png, placed.output.id, placed.output_size, placed.alignment
        ):
            return placed
    return None


async def _same_over_black(
    picture: NormalizedImage, stored: bytes, difference: AlignedDifference
) -> bool:
    """Whether every region matches, over black too for a translucent file."""
    if not difference.same:
        return False
    if picture.over_black is None:
        return True
    over_black = await asyncio.to_thread(
        compare_aligned_png, picture.over_black, stored, difference, likeness=True
    )
    return over_black.same


def _without_frame(
    variant: _Variant, difference: AlignedDifference, stored: bytes
) -> AlignedDifference | None:
    """How the picture without its frame matched, once the frame is told apart: None when
    it is the output's own border (the picture as it came is the one to compare), else
    with the margin left out counted as shown. Decodes the stored image once. CPU-bound."""
    with Image.open(io.BytesIO(stored), formats=["PNG"]) as output:
        pixels = np.asarray(output.convert("RGB"), dtype=np.int16)
    if _frame_is_the_outputs_own(variant, difference, pixels):
        return None
    return _margin_shown(difference, variant, pixels.shape[1], pixels.shape[0])


def _frame_is_the_outputs_own(
    variant: _Variant, difference: AlignedDifference, pixels: np.ndarray
) -> bool:
    """Whether the frame taken off lands, where the picture without it was placed, on
    the output's own pixels of the frame's colour (:data:`_OWN_BORDER_SHARE` of them,
    over :data:`_OWN_BORDER_AREA` of the output): then it is the output's own plain
    border, with whatever was drawn on it, not a screenshot's, and only the picture as it
    came may be compared (a hostile review: light grey text on an output's white border
    read "cropped to 86% of it, inside a plain frame"). A screenshot's frame lands beyond
    the output; one around a crop lands on what the crop cut off."""
    placed, frame = difference.alignment, variant.frame
    if placed is None or frame is None:
        return False
    height, width = pixels.shape[:2]
    sx, sy = placed.scale_x, placed.scale_y
    # The picture as it came, and (with the margin and a pixel of smear) without its frame.
    outer = (
        placed.left - frame.left / sx,
        placed.top - frame.top / sy,
        placed.left + (frame.framed_size[0] - frame.left) / sx,
        placed.top + (frame.framed_size[1] - frame.top) / sy,
    )
    reach = variant.margin + 1
    inner = (
        placed.left - reach / sx,
        placed.top - reach / sy,
        placed.left + (variant.size[0] + reach) / sx,
        placed.top + (variant.size[1] + reach) / sy,
    )
    footprint = np.zeros((height, width), dtype=bool)
    footprint[
        max(0, math.ceil(outer[1])) : min(height, math.floor(outer[3])),
        max(0, math.ceil(outer[0])) : min(width, math.floor(outer[2])),
    ] = True
    footprint[
        max(0, math.floor(inner[1])) : min(height, math.ceil(inner[3])),
        max(0, math.floor(inner[0])) : min(width, math.ceil(inner[2])),
    ] = False
    if footprint.sum() < _OWN_BORDER_AREA * width * height:
        return False
    off = np.abs(pixels[footprint] - np.array(frame.colour)).max(axis=-1)
    return bool((off <= _OWN_BORDER_TOLERANCE).mean() >= _OWN_BORDER_SHARE)


def _margin_shown(
    difference: AlignedDifference, variant: _Variant, width: int, height: int
) -> AlignedDifference:
    """The comparison of a picture without its frame, counting the margin left out with
    the frame (``variant.margin``) as shown: it was taken off here, not cropped by
    whoever made the copy (an untouched output in a frame read as "cropped to 97%")."""
    placed = difference.alignment
    if placed is None:
        return difference
    size, margin = variant.size, variant.margin
    left = max(0.0, snap_edge(placed.left - margin / placed.scale_x, 0))
    top = max(0.0, snap_edge(placed.top - margin / placed.scale_y, 0))
    right = min(width, snap_edge(placed.left + (size[0] + margin) / placed.scale_x, width))
    bottom = min(height, snap_edge(placed.top + (size[1] + margin) / placed.scale_y, height))
    shown = max(0.0, right - left) * max(0.0, bottom - top) / (width * height)
    return dataclasses.replace(difference, shown_share=max(difference.shown_share, shown))


async def stored_image(blobs: BlobStore, output: Output) -> bytes | None:
    """The output's image as stored, or None when there is none to compare with (not
    delivered yet, its blob is gone, or damaged: then it proves nothing either way)."""
    if output.blob_key is None:
        return None
    try:
        return await blobs.get(output.blob_key)
    except (KeyError, DamagedBlob):
        return None
