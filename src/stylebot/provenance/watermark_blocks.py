"""The version 3 reader's arithmetic on a U plane (``tiled_watermark.py``): the Haar low
band at any pixel offset of the block grid, each block's largest singular value (fast)
or norm (for every grid offset at once), a U plane sharpened, and block votes folded
into one tile."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from stylebot.provenance.watermark import _BLOCK


def low_band(u: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The Haar low band of ``u`` from pixel ``offset`` on, whole blocks only: each value
    is half the sum of a 2x2 pixel square (what ``pywt.dwt2(..., "haar")`` gives)."""
    return trim(pair_sums(u, (offset[0] % 2, offset[1] % 2)), offset)


def pair_sums(u: np.ndarray, parity: tuple[int, int]) -> np.ndarray:
    """Half the sums of the 2x2 squares starting at ``parity``: every low band of this
    parity is a part of it."""
    part = u[parity[0] :, parity[1] :]
    part = part[: part.shape[0] // 2 * 2, : part.shape[1] // 2 * 2]
    sums: np.ndarray = part[0::2, 0::2] + part[0::2, 1::2] + part[1::2, 0::2] + part[1::2, 1::2]
    return sums / 2


def trim(sums: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The low band from pixel ``offset`` on, out of the pair sums of its parity, cut to
    whole blocks."""
    low = sums[offset[0] // 2 :, offset[1] // 2 :]
    return low[: low.shape[0] // _BLOCK * _BLOCK, : low.shape[1] // _BLOCK * _BLOCK]


def largest_singular_fast(blocks: np.ndarray) -> np.ndarray:
    """Each 4x4 block's largest singular value by power iteration from the flat vector:
    a fraction of the time of an SVD. U is offset by 128, so every block's top singular
    vector is close to flat and far above the next: one step and the Rayleigh quotient
    land within 1e-3 of it."""
    # v = B^T B 1, then sigma^2 = |B v|^2 / |v|^2 (the Rayleigh quotient of B^T B), as
    # sums over each block's entries: batched 4x4 matmuls took twice as long.
    row_sums = blocks.sum(axis=2)
    vector = np.einsum("nij,ni->nj", blocks, row_sums)
    image = np.einsum("nij,nj->ni", blocks, vector)
    sigma: np.ndarray = np.sqrt(
        np.einsum("ni,ni->n", image, image) / np.einsum("nj,nj->n", vector, vector)
    )
    return sigma


def block_norms(sums: np.ndarray) -> np.ndarray:
    """The Frobenius norm of the 4x4 block of ``sums`` starting at every position: the
    blocks of every grid offset of one parity at once. U is offset by 128, so a block's
    largest singular value is almost all of its norm (texture adds its other singular
    values squared over twice the largest: a few hundredths of the quantiser's step), and
    this costs one pass instead of one power iteration per offset."""
    squares = np.zeros((sums.shape[0] + 1, sums.shape[1] + 1))
    squares[1:, 1:] = np.cumsum(np.cumsum(sums * sums, axis=0), axis=1)
    totals = (
        squares[_BLOCK:, _BLOCK:]
        - squares[:-_BLOCK, _BLOCK:]
        - squares[_BLOCK:, :-_BLOCK]
        + squares[:-_BLOCK, :-_BLOCK]
    )
    norms: np.ndarray = np.sqrt(totals)
    return norms


def sharpened(u: np.ndarray, sigma: float) -> np.ndarray:
    """``u`` plus its difference from a Gaussian blur of ``sigma`` pixels (unsharp mask)."""
    sharp: np.ndarray = 2 * u - cv2.GaussianBlur(u, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return sharp


# Unsharp masks (blur in pixels, amount) offered to the final decode of a shrunk copy. How
# much of the mark's block edges a downscale and JPEG took depends on the picture and
# the path, and no one mask suits all: at the true scale, of 26 downscaled copies
# (bench/watermark_failed_reads.py, seed 2026), the 1.5 px mask alone read 21 and the
# mask whose votes were clearest 24; the votes pick the right one without the bits.
DEBLURS = ((1.5, 1.0), (1.0, 4.0), (2.0, 2.0), (2.0, 4.0), (3.0, 2.0))


def deblurred(u: np.ndarray) -> list[np.ndarray]:
    """``u`` sharpened by each mask of :data:`DEBLURS`, in that order."""
    blurs = {sigma: cv2.GaussianBlur(u, (0, 0), sigmaX=sigma, sigmaY=sigma) for sigma, _ in DEBLURS}
    return [u + amount * (u - blurs[sigma]) for sigma, amount in DEBLURS]


def clearest_deblur(u: np.ndarray, strength: Callable[[np.ndarray], float]) -> np.ndarray:
    """``u`` sharpened by the mask of :data:`DEBLURS` under which ``strength`` (how clearly
    the mark's votes stand out, measured without knowing the bits) is highest."""
    return max(deblurred(u), key=strength)


LOCAL_BLOCKS = 5  # side of the neighbourhood whose mean vote is taken out


def folded(planes: tuple[np.ndarray, ...], tile: int) -> list[np.ndarray]:
    """Each of ``planes`` (a grid of blocks) summed into one ``tile`` x ``tile`` tile by
    position mod ``tile``."""
    rows, cols = planes[0].shape
    index = (np.arange(rows) % tile)[:, None] * tile + (np.arange(cols) % tile)[None, :]
    return [
        np.bincount(index.ravel(), weights=plane.ravel(), minlength=tile * tile).reshape(tile, tile)
        for plane in planes
    ]


def sin_cos(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of ``angle`` (radians, any size), in single precision once whole turns
    are taken out: numpy's double-precision sin and cos took ten times as long and were
    most of the placement search's time, and a vote needs nowhere near 1e-7."""
    turn = 2 * np.pi
    within = (angle - turn * np.floor(angle / turn)).astype(np.float32)
    return np.sin(within), np.cos(within)


def without_local_mean(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of the block angles, less their mean over the nearest 5x5 blocks.

    A plain region (a flat background, JPEG's smoothed chroma) gives all its blocks one
    angle whatever the mark: read at a wrong scale or placement, it votes as loudly as a
    mark, and a mostly plain picture then ranks wrong candidates first. Marked blocks
    differ by their dithers, so their local mean is close to 0 and they keep their votes.
    """
    sin, cos = sin_cos(angle)
    if min(angle.shape) < LOCAL_BLOCKS:
        return sin, cos
    size = (LOCAL_BLOCKS, LOCAL_BLOCKS)
    return sin - cv2.blur(sin, size), cos - cv2.blur(cos, size)
