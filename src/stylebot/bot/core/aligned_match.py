"""Compare a submitted picture with the part of a stored output it shows.

People pass pictures on cropped and rescaled: a repost trims an edge, a screenshot is
smaller. Such a copy still shows the maker's pixels, so it is placed on the output first
(:mod:`.picture_alignment`) and then compared block by block (:mod:`.picture_match`)
with the part of the output it shows, at that part's shape. The answer says how much of
the output it shows and at what size, which /verify words as "a cropped copy" or "a
resized copy".

What keeps "made by" honest:

* only the part of the output the picture shows is claimed, and all of it must match;
* any part of the picture that lies outside the output (something added around it)
  counts as differing, so a collage is at best an altered copy;
* a picture stretched to another shape is not the output at all (the two axes scaled
  differently), and one that can't be placed is compared whole, as before.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image

from stylebot.bot.core.picture_alignment import MIN_SHOWN_SHARE, align
from stylebot.bot.core.picture_match import (
    ALTERED_MAX_SHARE,
    LIKENESS_SHIFT,
    Box,
    PictureDifference,
    compare_pictures,
)
from stylebot.bot.core.placement import Alignment

#: Edges of the picture and of the output this close (output pixels) are one edge: the
#: placement is good to a fraction of a pixel, resizing to whole pixels moves an edge by
#: up to one.
_EDGE_SLACK = 1.5
#: A picture that shows this much of the output shows all of it (a pixel lost to rounding
#: is no crop worth naming).
SHOWN_WHOLE = 0.99
#: Rescaled by more than this (either way), it is "a resized copy".
RESIZED_BEYOND = 0.01


@dataclass(frozen=True)
class AlignedDifference:
    """How a picture differs from a stored output, after placing it on the output."""

    difference: PictureDifference  # over the part of the output the picture shows
    shown_share: float = 1.0  # of the output's area the picture shows
    scale: float = 1.0  # picture pixels per output pixel
    outside_share: float = 0.0  # of the picture's area that is not on the output
    stretched: bool = False  # resized by different amounts across and down
    alignment: Alignment | None = None  # None: compared whole

    @property
    def comparable(self) -> bool:
        """Whether the picture could be laid over (part of) the output at all."""
        return (
            self.difference.same_shape
            and not self.stretched
            and self.shown_share >= MIN_SHOWN_SHARE
        )

    @property
    def share(self) -> float:
        """The share of the picture that is not the output: added around it, or differing."""
        return self.outside_share + (1 - self.outside_share) * self.difference.share

    @property
    def same(self) -> bool:
        return self.comparable and self.outside_share == 0 and self.difference.same

    @property
    def altered(self) -> bool:
        return self.comparable and not self.same and self.share <= ALTERED_MAX_SHARE

    @property
    def percent(self) -> int:
        """The share as a whole percent, never rounded down to 0 when something differs."""
        if self.outside_share == 0 and self.difference.differing == 0:
            return 0
        return max(1, round(100 * self.share))

    @property
    def cropped(self) -> bool:
        return self.shown_share < SHOWN_WHOLE

    @property
    def resized(self) -> bool:
        return abs(self.scale - 1) > RESIZED_BEYOND

    @property
    def shown_percent(self) -> int:
        """The share of the output shown, in whole percent: 100 only when all of it."""
        return 100 if not self.cropped else min(99, round(100 * self.shown_share))

    @property
    def scale_percent(self) -> int:
        return round(100 * self.scale)


def compare_aligned(
    picture: Image.Image,
    output: Image.Image,
    like: AlignedDifference | None = None,
    *,
    thorough: bool = True,
    likeness: bool = False,
) -> AlignedDifference:
    """Place ``picture`` on ``output`` (or where ``like`` placed a picture of the same
    size: the same file over another background) and compare. ``thorough=False``: see
    :func:`.picture_alignment.align`. ``likeness``: compared for "resembles" (no mark),
    which allows for re-encoding at edges (:data:`.picture_match.LIKENESS_SHIFT`)
    and compares the parts exactly where the placement put them (see :func:`_placed`).
    CPU-bound."""
    alignment = align(picture, output, thorough=thorough) if like is None else like.alignment
    if alignment is None or alignment.stretched:
        return _whole(picture, output, stretched=alignment is not None, likeness=likeness)
    return _placed(picture, output, alignment, likeness)


def compare_aligned_png(
    picture_png: bytes,
    output_png: bytes,
    like: AlignedDifference | None = None,
    *,
    thorough: bool = True,
    likeness: bool = False,
) -> AlignedDifference:
    """`compare_aligned` on already-checked PNGs (a normalised upload, a stored output)."""
    with (
        Image.open(io.BytesIO(picture_png), formats=["PNG"]) as picture,
        Image.open(io.BytesIO(output_png), formats=["PNG"]) as output,
    ):
        return compare_aligned(picture, output, like, thorough=thorough, likeness=likeness)


def _whole(
    picture: Image.Image, output: Image.Image, *, stretched: bool, likeness: bool
) -> AlignedDifference:
    """Compared as whole pictures: not placed (too small a piece, flat, another picture),
    stretched, or placed over the whole output."""
    difference = compare_pictures(picture, output, shift=_shift(likeness))
    scale = (picture.width / output.width + picture.height / output.height) / 2
    return AlignedDifference(difference, scale=scale, stretched=stretched)


def _placed(
    picture: Image.Image, output: Image.Image, alignment: Alignment, likeness: bool
) -> AlignedDifference:
    # The picture's edges on the output, in output pixels.
    placed: Box = (
        alignment.left,
        alignment.top,
        alignment.left + picture.width / alignment.scale_x,
        alignment.top + picture.height / alignment.scale_y,
    )
    # An edge within the slack of the output's is that edge (rounding, not a crop).
    left, top = snap_edge(placed[0], 0), snap_edge(placed[1], 0)
    right, bottom = snap_edge(placed[2], output.width), snap_edge(placed[3], output.height)
    # For a likeness the parts are also compared where the placement put them: a
    # screenshot without its frame lost a pixel or two of each side (the frame's margin),
    # which the slack would otherwise stretch over the whole output (measured: edges of a
    # 256 px illustration a pixel off, blocks along them read as differing). The slack
    # still decides what is shown and what lies outside.
    compared = placed if likeness else (left, top, right, bottom)
    if (left, top, right, bottom) == (0, 0, output.width, output.height):
        difference = _compare_part(picture, _all_of(picture), output, _all_of(output), likeness)
        # A likeness is also tried where the placement put it (above); for an output
        # resized as a whole, the whole-to-whole comparison is the truer one.
        if not likeness or difference.same:
            return AlignedDifference(difference, scale=alignment.scale, alignment=alignment)
    shown: Box = (
        max(0.0, compared[0]),
        max(0.0, compared[1]),
        min(output.width, compared[2]),
        min(output.height, compared[3]),
    )
    if shown[2] - shown[0] < 1 or shown[3] - shown[1] < 1:
        return _whole(picture, output, stretched=False, likeness=likeness)
    # The same part in the picture's pixels, kept inside the picture.
    on_picture: Box = (
        max(0.0, (shown[0] - alignment.left) * alignment.scale_x),
        max(0.0, (shown[1] - alignment.top) * alignment.scale_y),
        min(picture.width, (shown[2] - alignment.left) * alignment.scale_x),
        min(picture.height, (shown[3] - alignment.top) * alignment.scale_y),
    )
    difference = _compare_part(picture, on_picture, output, shown, likeness)
    shown_area = (min(output.width, right) - max(0.0, left)) * (
        min(output.height, bottom) - max(0.0, top)
    )
    # What of the picture lies beyond the output's edges (past the slack): not its pixels.
    beyond = (min(right, output.width) - max(left, 0)) * (min(bottom, output.height) - max(top, 0))
    outside = 1 - max(0.0, beyond) / ((right - left) * (bottom - top))
    return AlignedDifference(
        difference,
        shown_share=shown_area / (output.width * output.height),
        scale=alignment.scale,
        outside_share=max(0.0, outside) if outside > 1e-6 else 0.0,
        alignment=alignment,
    )


def _shift(likeness: bool) -> int:
    return LIKENESS_SHIFT if likeness else 0


def _all_of(image: Image.Image) -> Box:
    return (0.0, 0.0, float(image.width), float(image.height))


def _compare_part(
    picture: Image.Image, on_picture: Box, output: Image.Image, shown: Box, likeness: bool
) -> PictureDifference:
    """Compare a part of the picture with the part of the output it shows.

    A smaller copy cannot show detail finer than its own pixels, and the comparison's
    finest check would read the detail it lost as an edit (JPEG q60 after a 0.7x rescale
    did, at a hard edge). So the output's part is first brought to the copy's size, as
    the copy was. The parts are trimmed to whole pixels of the copy (by under a pixel)
    so that the two stay registered."""
    width, height = on_picture[2] - on_picture[0], on_picture[3] - on_picture[1]
    if width >= shown[2] - shown[0]:
        return compare_pictures(picture, output, on_picture, shown, shift=_shift(likeness))
    whole_width, whole_height = max(1, math.floor(width)), max(1, math.floor(height))
    shown = (
        shown[0],
        shown[1],
        shown[0] + (shown[2] - shown[0]) * whole_width / width,
        shown[1] + (shown[3] - shown[1]) * whole_height / height,
    )
    on_picture = (
        on_picture[0],
        on_picture[1],
        on_picture[0] + whole_width,
        on_picture[1] + whole_height,
    )
    as_small = output.convert("RGB").resize(
        (whole_width, whole_height), Image.Resampling.BICUBIC, box=shown
    )
    return compare_pictures(picture, as_small, on_picture, shift=_shift(likeness))


def snap_edge(edge: float, to: float) -> float:
    """``to`` when ``edge`` is within the slack of it (rounding, not a crop), else ``edge``."""
    return float(to) if abs(edge - to) <= _EDGE_SLACK else edge
