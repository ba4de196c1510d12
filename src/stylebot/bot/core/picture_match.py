"""How much of a submitted picture differs from a stored output, region by region.

A whole-image hash cannot tell a re-encoded output from one with a banner over a third of
it: both move only a few of its 64 bits. So both pictures are brought to one working size
(the stored output's shape, long side :data:`WORK_SIDE`), cut into a grid of blocks, and
each block pair is scored with SSIM (luminance, contrast and structure, on grey) plus the
difference of the blocks' mean colours. JPEG and rescaling blur every block a little but
keep its structure and colour (scores stay high); a banner or a pasted picture replaces
the structure of the blocks it covers, which then score low. At that size a thin stroke
(text written over the picture, a small logo) averages away inside its block, so each
block is also checked at twice the working size, after a light blur that evens out JPEG
and rescaling noise: the largest local difference in it must stay small. The answer is
the share of blocks that differ; "the same picture" means none differs.

A likeness (no mark to read, :mod:`.resemblance`) is compared with one allowance more:
the finer check counts only how far a pixel lies outside the other picture's values
next to it, since a copy whose mark was destroyed went through heavier re-encoding and
rescaling, which blur a hard edge without bringing new values to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

#: Long side of the working size. Smaller would average away the fine texture that tells
#: two generated pictures apart; larger would keep JPEG's own noise.
WORK_SIDE = 256
#: Block side at the working size: a 16x16 grid on a square output.
BLOCK = 16
# SSIM's stabilising constants for 8-bit values (Wang et al. 2004: K1=0.01, K2=0.03).
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
#: A block pair scoring below this SSIM differs. Measured on tiny-model outputs, smooth
#: scenes, flat illustrations and subjects on plain backgrounds (the pictures of
#: tests/unit/core/test_verify_regions.py): JPEG q60/q75, half size and back and
#: Telegram's photo path keep every block at 0.96 or more; blocks under a banner or a
#: pasted picture score 0.1-0.5, a few up to 0.8 (those the colour test below catches).
MIN_BLOCK_SSIM = 0.75
#: Or a block's mean colour moved this far (0-255, largest channel): a patch whose grey
#: structure happens to resemble what it covers still changes its colour. Re-encoding
#: moves block means by at most ~2.
MAX_BLOCK_COLOUR_SHIFT = 12.0
#: The finer check: both pictures at twice the working size, blurred (Gaussian, radius
#: :data:`_FINE_BLUR`), then the per-pixel difference (0-255, largest channel) averaged over
#: :data:`_FINE_WINDOW`-pixel squares; a block whose largest square average exceeds this
#: differs. Measured on the pictures of tests/unit/core/test_verify_regions.py: JPEG q60,
#: half size and back and Telegram's photo path stay at or under ~17 (a flat illustration at
#: q60); 11-13 px text over a 1024 px picture scores 44 or more, a small pasted logo 117+.
MAX_LOCAL_DIFFERENCE = 30.0
_FINE_BLUR = 1.5
_FINE_WINDOW = 4
#: For a likeness only ("resembles", no mark): the finer check measures how far each
#: pixel of one picture lies outside the values the other has within this many pixels
#: (at twice the working size), both ways. Re-encoding and rescaling err at hard edges
#: (JPEG's ringing and halved chroma, a rescale's overshoot, a placement a fraction of a
#: pixel off) with values the edge already has nearby; a logo or text added or taken away
#: brings values that are nowhere near. "Made by" compares pixel with pixel (0): any edit
#: there must read as one.
LIKENESS_SHIFT = 1
#: Aspect ratios this close count as one shape: resizing to whole pixels (Telegram's
#: 1280 px side, halving an odd side) moves the ratio by well under 1%.
SAME_SHAPE_TOLERANCE = 0.02
#: At most this share of blocks may differ for the picture to be the output itself ("made
#: by"): none. JPEG q60, half size and back and Telegram's photo path leave none
#: differing, and any tolerance would let a small edit (a caption, a logo) pass as the
#: maker's own work.
SAME_MAX_SHARE = 0.0
#: Beyond this share the picture is not an altered copy but another picture (a mark
#: copied onto it): unrelated pictures differ in 96-100% of their blocks.
ALTERED_MAX_SHARE = 0.6


@dataclass(frozen=True)
class PictureDifference:
    """The block grid's verdict: `differing` of `blocks` blocks differ."""

    blocks: int
    differing: int
    # Whether both compared parts have (nearly) one aspect ratio: two parts of another
    # shape are not aligned (the grid compares them whole), so they differ almost
    # everywhere. aligned_match finds the part of the output a crop shows first.
    same_shape: bool = True

    @property
    def share(self) -> float:
        return self.differing / self.blocks if self.blocks else 1.0

    @property
    def same(self) -> bool:
        # A picture stretched to another shape is not the output, however its blocks score.
        return self.same_shape and self.share <= SAME_MAX_SHARE

    @property
    def altered(self) -> bool:
        return self.same_shape and SAME_MAX_SHARE < self.share <= ALTERED_MAX_SHARE

    @property
    def percent(self) -> int:
        """The share as a whole percent, never rounded down to 0 when something differs."""
        if self.differing == 0:
            return 0
        return max(1, round(100 * self.share))


def _work_size(width: int, height: int) -> tuple[int, int]:
    scale = WORK_SIDE / max(width, height)
    # Whole blocks only: a strip narrower than a block would be compared on too few pixels.
    w = max(BLOCK, round(width * scale) // BLOCK * BLOCK)
    h = max(BLOCK, round(height * scale) // BLOCK * BLOCK)
    return w, h


#: A part of a picture: (left, top, right, bottom) in pixels, fractions allowed.
Box = tuple[float, float, float, float]


def _whole(image: Image.Image) -> Box:
    return (0.0, 0.0, float(image.width), float(image.height))


def _resized(image: Image.Image, box: Box, size: tuple[int, int]) -> Image.Image:
    return image.convert("RGB").resize(size, Image.Resampling.BOX, box=box)


def _pixels(image: Image.Image, box: Box, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(_resized(image, box, size), dtype=np.float64)


def _local_differences(
    submitted: Image.Image,
    submitted_box: Box,
    stored: Image.Image,
    stored_box: Box,
    size: tuple[int, int],
    shift: int = 0,
) -> np.ndarray:
    """(rows, cols) of each block's largest local difference at twice the working size.
    ``shift``: see :func:`_beyond_neighbours`."""
    fine = (size[0] * 2, size[1] * 2)
    blur = ImageFilter.GaussianBlur(_FINE_BLUR)
    a = _resized(submitted, submitted_box, fine).filter(blur)
    b = _resized(stored, stored_box, fine).filter(blur)
    if shift:
        per_pixel = np.maximum(_beyond_neighbours(a, b, shift), _beyond_neighbours(b, a, shift))
    else:
        per_pixel = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(axis=-1)
    h, w = per_pixel.shape
    squares = per_pixel.reshape(h // _FINE_WINDOW, _FINE_WINDOW, w // _FINE_WINDOW, _FINE_WINDOW)
    local = squares.mean(axis=(1, 3))
    per_block = 2 * BLOCK // _FINE_WINDOW  # squares along a block's side
    lh, lw = local.shape
    grid = local.reshape(lh // per_block, per_block, lw // per_block, per_block)
    result: np.ndarray = grid.max(axis=(1, 3))
    return result


def _beyond_neighbours(a: Image.Image, b: Image.Image, shift: int) -> np.ndarray:
    """Per pixel, how far ``a`` lies outside the range of ``b``'s values within ``shift``
    pixels (0-255, largest channel). A copy re-encoded, resampled or placed a pixel off
    keeps its values between those of the original's neighbours, however sharp the edge;
    a logo or text brings colours its place in the other picture does not have."""
    side = 2 * shift + 1
    high = np.asarray(b.filter(ImageFilter.MaxFilter(side)), np.int16)
    low = np.asarray(b.filter(ImageFilter.MinFilter(side)), np.int16)
    values = np.asarray(a, np.int16)
    beyond = np.maximum(np.maximum(values - high, low - values), 0)
    result: np.ndarray = beyond.max(axis=-1)
    return result


def _blocks(plane: np.ndarray) -> np.ndarray:
    """(rows, cols, BLOCK*BLOCK[, channels]) view of a plane cut into blocks."""
    h, w = plane.shape[:2]
    rest = plane.shape[2:]
    grid = plane.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, *rest).swapaxes(1, 2)
    return grid.reshape(h // BLOCK, w // BLOCK, BLOCK * BLOCK, *rest)


def compare_pictures(
    submitted: Image.Image,
    stored: Image.Image,
    submitted_box: Box | None = None,
    stored_box: Box | None = None,
    *,
    shift: int = 0,
) -> PictureDifference:
    """Compare `submitted` to `stored` (or the given parts of them, which
    :mod:`.aligned_match` finds for a crop or a rescale) at the stored part's shape
    (CPU-bound). ``shift``: :data:`LIKENESS_SHIFT` for a likeness, 0 for "made by"."""
    submitted_box = submitted_box or _whole(submitted)
    stored_box = stored_box or _whole(stored)
    stored_width, stored_height = stored_box[2] - stored_box[0], stored_box[3] - stored_box[1]
    width, height = submitted_box[2] - submitted_box[0], submitted_box[3] - submitted_box[1]
    size = _work_size(round(stored_width), round(stored_height))
    a = _pixels(submitted, submitted_box, size)
    b = _pixels(stored, stored_box, size)
    grey_weights = np.array([0.299, 0.587, 0.114])
    ga, gb = _blocks(a @ grey_weights), _blocks(b @ grey_weights)
    mean_a, mean_b = ga.mean(axis=-1), gb.mean(axis=-1)
    var_a, var_b = ga.var(axis=-1), gb.var(axis=-1)
    cov = ((ga - mean_a[..., None]) * (gb - mean_b[..., None])).mean(axis=-1)
    ssim = ((2 * mean_a * mean_b + _C1) * (2 * cov + _C2)) / (
        (mean_a**2 + mean_b**2 + _C1) * (var_a + var_b + _C2)
    )
    colour_shift = np.abs(_blocks(a).mean(axis=-2) - _blocks(b).mean(axis=-2)).max(axis=-1)
    differs = (
        (ssim < MIN_BLOCK_SSIM)
        | (colour_shift > MAX_BLOCK_COLOUR_SHIFT)
        | (
            _local_differences(submitted, submitted_box, stored, stored_box, size, shift)
            > MAX_LOCAL_DIFFERENCE
        )
    )
    ratio = (width * stored_height) / (height * stored_width)
    return PictureDifference(
        blocks=int(differs.size),
        differing=int(differs.sum()),
        same_shape=abs(ratio - 1) <= SAME_SHAPE_TOLERANCE,
    )
