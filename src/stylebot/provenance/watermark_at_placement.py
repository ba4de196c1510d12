"""Whether a picture carries one given output's mark, where it sits on that output.

The reader (``tiled_watermark.py``) must find a mark blind: search scales and placements,
then decode 128 bits with at most 10 wrong (version 4's code) and a CRC to check. A
copy shrunk and re-encoded twice (a screenshot sent through Telegram) often keeps the
mark with 15-25 wrong bits, or votes too faintly for the search to find the placement.

/verify can ask a narrower question. When the likeness lookup (the fingerprint index and
the region comparison, ``stylebot.bot.core.resemblance``) has placed a copy on a stored
output X but did not claim it, the copy is brought back onto X's pixel grid with that
placement, each of the 128 code bits is read there (as the reader reads a placement it
found), and the signs are compared with the bits X's own id is embedded as (versions 4
and 3: the tiled layouts, whose grid starts at X's top left corner). A picture that does
not carry X's mark agrees in 64 of 128 on average, each agreement a coin toss (the
whitening makes every codeword look random); :data:`MIN_AGREEING` or more happens by
chance with probability 5.5e-11 per look. Each call takes :data:`LOOKS` looks (two
versions, the plane as it is and under each of the reader's unsharp masks, votes with
and without their local mean), and /verify asks about at most 20 placed candidates, so
a false "carries X's mark" is below 1 in 10 million per /verify. Copies of another output
Y agree with X's bits where Y's codeword does (a distance of 22 bits is possible between
two BCH codewords, but two outputs' ids land within 28 bits of each other with
probability about 2^-34).

Measured (``bench/small_copies.py``, docs/provenance.md): copies at 256 px that the blind
reader missed agree in 106-128 of 128 at the likeness's placement; random ids' bits at
the same placements, 750 checks, in at most 84.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from stylebot.provenance.tiled_watermark import (
    _PIXELS_PER_BLOCK,
    _TILE,
    _VERSIONS,
    _Placement,
    _soft_at,
    _u_plane_of,
)
from stylebot.provenance.watermark import code_bits, is_output_id
from stylebot.provenance.watermark_blocks import DEBLURS, deblurred
from stylebot.provenance.watermark_resampling import prefiltered

#: Code bits whose vote must agree with the output's bits (of 128); see the module's doc.
MIN_AGREEING = 100
#: Looks per call: versions x (plane as it is + each unsharp mask) x (votes as they are,
#: less their local mean).
LOOKS = len(_VERSIONS) * (1 + len(DEBLURS)) * 2
_MIN_BLOCKS = 4  # along each side: fewer whole blocks shown, too few votes per bit
# ... and at most this many, from the middle: 512x512 output pixels give each code bit
# 32 blocks, and a check of a 2048 px output read whole cost 1.1-1.5 s (a reviewer's
# measurement; up to 20 checks per /verify).
_MAX_BLOCKS = 64


def carries_mark(
    rgb: np.ndarray,
    output_id: str,
    output_size: tuple[int, int],
    scale: tuple[float, float],
    corner: tuple[float, float],
) -> bool:
    """Whether ``rgb`` carries ``output_id``'s tiled mark, placed on that output (of
    ``output_size``, width and height) so that output pixel ``(x, y)`` shows at picture
    pixel ``((x - left) * scale_x, (y - top) * scale_y)``, ``corner`` being (left, top)
    (continuous coordinates: a pixel spans [i, i + 1], as the core's ``Alignment``)."""
    return agreeing_bits(rgb, output_id, output_size, scale, corner) >= MIN_AGREEING


def agreeing_bits(
    rgb: np.ndarray,
    output_id: str,
    output_size: tuple[int, int],
    scale: tuple[float, float],
    corner: tuple[float, float],
) -> int:
    """The most code bits (of 128) whose votes agree with ``output_id``'s over the
    :data:`LOOKS` looks, placed as for :func:`carries_mark`; 0 when the picture shows
    too little of the output to read, or ``output_id`` is no id a mark carries (a record
    of another system's)."""
    if not is_output_id(output_id):
        return 0
    (scale_x, scale_y), (left, top) = scale, corner
    height, width = rgb.shape[:2]
    # The output's whole blocks the picture shows.
    first_col = math.ceil(max(0.0, left) / _PIXELS_PER_BLOCK)
    first_row = math.ceil(max(0.0, top) / _PIXELS_PER_BLOCK)
    end_col = math.floor(min(output_size[0], left + width / scale_x) / _PIXELS_PER_BLOCK)
    end_row = math.floor(min(output_size[1], top + height / scale_y) / _PIXELS_PER_BLOCK)
    if min(end_col - first_col, end_row - first_row) < _MIN_BLOCKS:
        return 0
    first_col, end_col = _central(first_col, end_col)
    first_row, end_row = _central(first_row, end_row)
    region = on_output_grid(
        rgb,
        (scale_x, scale_y),
        (first_col * _PIXELS_PER_BLOCK - left, first_row * _PIXELS_PER_BLOCK - top),
        ((end_col - first_col) * _PIXELS_PER_BLOCK, (end_row - first_row) * _PIXELS_PER_BLOCK),
    )
    placement = _Placement(0.0, (0, 0), (first_row % _TILE, first_col % _TILE))
    u = _u_plane_of(region)
    most = 0
    planes = (u, *deblurred(u))
    for version in _VERSIONS:
        zero = np.array(code_bits(output_id, version)) == 0  # a vote > 0 is a 0 bit
        for plane in planes:
            for centred in (False, True):
                soft = _soft_at(plane, placement, centred)
                # a bit with no vote (0) agrees with neither
                most = max(most, int(np.sum(np.where(zero, soft > 0, soft < 0))))
    return most


def _central(first: int, end: int) -> tuple[int, int]:
    """At most :data:`_MAX_BLOCKS` blocks from the middle of ``first``..``end``."""
    extra = max(0, end - first - _MAX_BLOCKS)
    return first + extra // 2, end - (extra - extra // 2)


def on_output_grid(
    rgb: np.ndarray,
    scale: tuple[float, float],
    start: tuple[float, float],
    size: tuple[int, int],
) -> np.ndarray:
    """The picture (shown at ``scale`` picture pixels per output pixel) resampled onto the
    output's pixels, blurred first if that shrinks it: region pixel (0, 0) is output
    pixel ``start`` (relative to the picture's corner on the output), ``size`` wide and
    high."""
    (scale_x, scale_y), (start_x, start_y) = scale, start
    rgb = prefiltered(rgb, max(scale_x, scale_y))
    # region pixel i's centre, i + 0.5 output pixels past start, at picture pixel index
    # (start + i + 0.5) * scale - 0.5
    matrix = np.array(
        [
            [scale_x, 0.0, (start_x + 0.5) * scale_x - 0.5],
            [0.0, scale_y, (start_y + 0.5) * scale_y - 0.5],
        ]
    )
    region = cv2.warpAffine(
        np.ascontiguousarray(rgb),
        matrix,
        size,
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.ascontiguousarray(region)
