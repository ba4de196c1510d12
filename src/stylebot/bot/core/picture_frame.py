"""A plain frame around a picture: what a screenshot adds (a few pixels of window or page
around the image it captured).

The frame changes a whole-picture fingerprint by a few to a dozen bits and moves every
whole-side fit of the alignment off by its width, so an unmarked screenshot of an output
would not be found by its fingerprint nor placed on the output. Taking the frame off first
gives back the picture that was captured. A frame here is one colour, and as wide, on
all four sides: a picture of a subject on a plain background can look framed too, which
is why the caller tries the picture as it came as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: A frame wider than this share of a side is not a frame but most of the picture.
MAX_FRAME_SHARE = 0.25
#: A screenshot's frame is as wide on every side, give or take JPEG's smear of its edge
#: (a pixel or two). One side much wider is a band of the frame's colour inside it (a
#: caption's banner): taken for frame, it would leave a crop of what it covers.
MAX_FRAME_UNEVENNESS = 2
#: A frame must stand out: the picture's lines differ from the frame's colour at least
#: this many times as much (plus :data:`_NOISE`) as the frame's own lines do. JPEG's
#: chroma subsampling smears a thin frame (its lines move by 6-15 of 255 on average, a
#: picture's by 30 and more), so only the contrast is sure, not the frame's exact colour.
_CONTRAST = 3.0
_NOISE = 2.0
#: ...and it must be plain: every pixel of it farther than :data:`_EDGE_SMEAR` from the
#: picture within this of the frame's colour, in each of red, green and blue. Text,
#: stickers or another picture in it (a meme's caption; in a colour as light as the
#: frame's, too) are not a frame, and taking them off would claim what they cover.
#: Measured through JPEG q80 and Telegram's q87 on frames of 8-40 px around scenes,
#: illustrations and subjects on plain backgrounds: at most 32 of 255 from 3 to 12 px
#: off the picture (JPEG's blocks reach that far), 11 at 13 px, 0-1 beyond 14 px. So
#: a frame is held to :data:`_FAR_TOLERANCE` beyond :data:`_JPEG_REACH`: faint text
#: there (light grey on white) is not frame either.
PLAIN_TOLERANCE = 48
_EDGE_SMEAR = 2
_JPEG_REACH = 16
_FAR_TOLERANCE = 8


@dataclass(frozen=True)
class PlainFrame:
    """A plain frame found around a picture."""

    inside: Image.Image  # the picture without the frame (and the margin asked for)
    left: int  # where ``inside`` starts in the framed picture, in its pixels
    top: int
    colour: tuple[int, int, int]  # the frame's colour (median of the outermost ring)
    framed_size: tuple[int, int]  # the picture with its frame


def without_plain_frame(image: Image.Image, margin: int = 0) -> Image.Image | None:
    """``image`` without a plain frame of one colour around all four sides (and
    ``margin`` more pixels on each side), or None when it has none (or what would be left
    is too small to be a picture)."""
    found = plain_frame(image, margin)
    return None if found is None else found.inside


def plain_frame(image: Image.Image, margin: int = 0, *, strict: bool = False) -> PlainFrame | None:
    """The plain frame around ``image``, taken off with ``margin`` more pixels on each
    side (see :func:`without_plain_frame`), or None. ``strict``: no allowance for JPEG's
    smear beyond the picture's own edge (:data:`_EDGE_SMEAR`), for a frame left out of
    a "made by" comparison: faint text next to the picture passes for smear otherwise
    (a caption 40 of 255 off the frame's grey, 9-22 px from the picture: a hostile
    review), and JPEG's smear can't be told from it by the pixels."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    height, width = grey.shape
    if min(height, width) < 16:
        return None
    rgb = image.convert("RGB")
    pixels = np.asarray(rgb, dtype=np.int16)
    colour = np.median(_ring(pixels), axis=0)
    top, bottom, left, right = _frame_widths(grey, pixels, colour)
    if min(top, bottom, left, right) == 0:
        return None
    if max(top, bottom, left, right) - min(top, bottom, left, right) > MAX_FRAME_UNEVENNESS:
        return None  # a band of the frame's colour along one side is the picture's own
    if top + bottom > MAX_FRAME_SHARE * height or left + right > MAX_FRAME_SHARE * width:
        return None
    box = (left + margin, top + margin, width - right - margin, height - bottom - margin)
    if box[2] - box[0] < 16 or box[3] - box[1] < 16:
        return None
    if not _plain(pixels, colour, (top, bottom, left, right), strict):
        return None
    red, green, blue = (int(v) for v in colour)
    return PlainFrame(rgb.crop(box), box[0], box[1], (red, green, blue), image.size)


def _ring(plane: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels of ``plane``, whose median is the frame's colour."""
    return np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])


def _frame_widths(
    grey: np.ndarray, rgb: np.ndarray, colour: np.ndarray
) -> tuple[int, int, int, int]:
    """The frame's width on each side (top, bottom, left, right; 0: none), by how far
    each line is from the frame's colour (the median of the outermost ring) in brightness,
    else in colour. A picture's edge can be as bright as the frame and differ in hue (or
    the other way): its line then lies less than halfway to the rest of the picture on
    one measure only, and that side's frame reads as far too wide or absent. Brightness
    comes first, as JPEG smears colour a line or so into the frame; where neither measure
    finds an even frame, each side takes the narrower width either finds. Measured on 300
    screenshots at 256 px (2-6 px frames; PNG, JPEG q80, Telegram): brightness alone
    found 283 frames, this 296 (294 to the pixel), none more than a pixel off."""

    def per_side(off: np.ndarray) -> tuple[int, int, int, int]:
        return (
            _frame_lines(off),
            _frame_lines(off[::-1]),
            _frame_lines(off.T),
            _frame_lines(off.T[::-1]),
        )

    by_brightness = per_side(np.abs(grey - float(np.median(_ring(grey)))))
    by_colour = per_side(np.abs(rgb - colour).max(axis=2))
    for widths in (by_brightness, by_colour):
        if min(widths) > 0 and max(widths) - min(widths) <= MAX_FRAME_UNEVENNESS:
            return widths
    top, bottom, left, right = (
        min((w for w in side if w), default=0)
        for side in zip(by_brightness, by_colour, strict=True)
    )
    return top, bottom, left, right


def _plain(
    rgb: np.ndarray, colour: np.ndarray, widths: tuple[int, int, int, int], strict: bool
) -> bool:
    """Whether the frame (``widths``: top, bottom, left, right) is ``colour`` in all three
    channels, but for JPEG's smear next to the picture (unless ``strict``)."""
    off = np.abs(rgb - colour).max(axis=2)
    near = off[_outside(off.shape, widths, _EDGE_SMEAR)] > PLAIN_TOLERANCE
    reach = _EDGE_SMEAR if strict else _JPEG_REACH
    far = off[_outside(off.shape, widths, reach)] > _FAR_TOLERANCE
    return not (bool(near.any()) or bool(far.any()))


def _outside(shape: tuple[int, ...], widths: tuple[int, int, int, int], reach: int) -> np.ndarray:
    """The frame's pixels farther than ``reach`` from the picture (``widths``: top,
    bottom, left, right)."""
    top, bottom, left, right = widths
    height, width = shape[0], shape[1]
    mask = np.ones((height, width), dtype=bool)
    mask[
        max(0, top - reach) : height - max(0, bottom - reach),
        max(0, left - reach) : width - max(0, right - reach),
    ] = False
    return mask


def _frame_lines(off: np.ndarray) -> int:
    """How many lines from the start of ``off`` (each row a line: how far each pixel is
    from the frame's colour) belong to the frame: those before the first line that is
    halfway between the outermost line and the picture inside; 0 when nothing stands
    out from the outermost line."""
    limit = max(2, int(MAX_FRAME_SHARE * off.shape[0]))
    per_line = off[:limit].mean(axis=1)
    outermost = float(per_line[0])
    inside = float(np.median(per_line[limit // 2 :]))
    if inside < _CONTRAST * (outermost + _NOISE):
        return 0
    beyond = per_line > (outermost + inside) / 2
    return int(np.argmax(beyond)) if beyond.any() else 0
