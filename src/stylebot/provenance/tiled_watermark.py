"""Versions 3 and 4 of the mark (4 differs only in its code; "version 3" below means both):
the same blocks as version 2, laid out so that crops and rescales can be undone.

Version 2 (``watermark.py``) gives block *i* (counted row by row from the top left corner)
code bit ``i % 128`` and its own dither. Crop a few pixels off the left edge, or rescale,
and every block's index changes: the reader's votes are noise (0 of 5 traced after 10%
cropped off one side, or a 0.7x rescale).

Version 3 makes the layout periodic: block (row, col) carries the bit and dither of tile
position (row mod 32, col mod 32), a tile of 32x32 blocks (256x256 pixels) in which each
of the 128 code bits sits 8 times, at scattered places and with 8 different dithers (so
that flat regions, which JPEG pulls to one value, still vote at random, not all alike).
A crop then only moves the picture against the tile; the reader finds the move:

* the pixel offset of the block grid (8x8 choices), by trying each;
* the tile offset (32x32 choices), all at once: a block's vote ``sin(a - d)`` is
  ``sin a cos d - cos a sin d`` with ``a`` from the picture and ``d`` the dither, so
  folding ``sin a`` and ``cos a`` into one 32x32 tile makes every code bit's vote for
  every tile offset a circular cross-correlation, done by FFT.

A rescale is estimated first (``watermark_scale.py``: a dozen candidate scales, mostly
wrong) and undone by resampling (``watermark_resampling.py``); the search above then runs
on the result. The quantiser reads each block's exact sum, so the resampled grid must
fall on the marked one to a fraction of a pixel: a quarter of a pixel off halves the
votes, half a pixel off leaves noise. Undoing a rescale centre on centre lands on the
marked grid only if the picture's side at the original scale is known to the pixel,
and it is not (an estimate a hair too high gives a side one pixel short; a crop can make
it odd), so each candidate is searched at four sub-pixel phases (0 or half a pixel on
each axis). Every candidate is decoded once as found (the right one is often within
0.05%); then the eight whose best placement votes most clearly are looked at 0.5%
either side, and no rescale and the three clearest there are refined
(``watermark_refinement.py``: scale over +-1.6%, then the phase by a quarter pixel) and
decoded over the whole read region. Votes are taken less their local mean, so that plain
regions, which give every block one angle, do not vote at wrong scales. Each decode
tries version 4's BCH code, then version 3's Reed-Solomon code (as version 2's), each
with its own CRC prefix and whitening: the codes and the CRC, not the votes, are what
keep unmarked pictures from reading as marked however many placements are tried.

Cost is bounded whatever the upload: the placement search looks at a central window of at
most 384x384 pixels (256x256 at an enlargement, 512x512 at a downscale, where it runs four
times) at the original scale, with each block's norm standing in for its largest singular
value (every grid offset at once), and the final read at a central region of at most
1024x1024 pixels. A shrunk copy's final decode is sharpened by the unsharp mask under which
its votes are clearest (``watermark_blocks.DEBLURS``). At one placement the votes are summed
block by block (the FFT is for the search), and a window resampled at a scale every
refinement tries is made once for the placements refined.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from stylebot.provenance.watermark import (
    _BLOCK,
    _SCALE,
    CODE_BITS,
    WatermarkReading,
    _blocks,
    _decode,
    _quantise_blocks,
    _u_plane,
)
from stylebot.provenance.watermark_blocks import (
    block_norms,
    clearest_deblur,
    folded,
    largest_singular_fast,
    low_band,
    pair_sums,
    sharpened,
    sin_cos,
    trim,
    without_local_mean,
)
from stylebot.provenance.watermark_refinement import Strength, best_nearby, coarse_steps, refine
from stylebot.provenance.watermark_resampling import prefiltered, resample, same_parity, shape_at
from stylebot.provenance.watermark_scale import rescale_candidates

#: The smallest picture searched: a 256x256 output shrunk to half.
MIN_READ_PIXELS = 128 * 128

_VERSIONS = (4, 3)  # the codes a tiled mark may carry, the one written now first
_TILE = 32  # blocks per tile side; a block is 8x8 pixels, so 256 pixels
_PIXELS_PER_BLOCK = 2 * _BLOCK  # the low band of the Haar DWT is half size
_SEARCH_SIDE = 384  # pixels (original scale) around the centre the placement search reads
# ... at a rescale, where it runs once per sub-pixel phase: a smaller window costs less,
# and an estimate a little off drifts less over it.
_RESCALED_SEARCH_SIDE = 256
# ... at a downscale: a shrunk copy (with JPEG) votes so faintly that, searched over
# 256x256 pixels at the true scale, 1 of 10 test pictures shown at 0.62-0.78x in a JPEG
# screenshot sent through Telegram decoded (a wrong grid won); over 512x512, 9 of 10. It
# makes an unmarked read about a third slower (docs/provenance.md).
_SHRUNK_SEARCH_SIDE = 512
_READ_SIDE = 1024  # pixels (original scale) around the centre the final read uses
_MIN_WINDOW_PIXELS = 2 * _PIXELS_PER_BLOCK  # narrower than two blocks: nothing to read
_DECODED_SCALES = 3  # rescaled candidates refined and decoded, the clearest first
_RANKED_SCALES = 8  # rescaled candidates looked at either side before they are ranked
# Blur (pixels, original scale) whose difference is added back to the U plane of a shrunk
# copy for the search and refinement: at the true scale, after a downscale to 0.57-0.81x
# (with JPEG in 6 of 8), 4 of 8 copies the plain read missed were read this way. The final
# decode picks among several masks (watermark_blocks.DEBLURS).
_SHARPENING = 1.5
# Sub-pixel shifts of the resampling grid tried at each rescale (original pixels): the
# quantiser reads a block's exact sum, and a grid half a pixel off reads noise (module doc).
_PHASES = ((0.0, 0.0), (0.0, 0.5), (0.5, 0.0), (0.5, 0.5))


@dataclass(frozen=True)
class _Layout:
    bit_of: np.ndarray  # (32, 32) code bit index of each tile position
    dither: np.ndarray  # (32, 32) quantiser offset in [0, scale)


def _make_layout() -> _Layout:
    seed = int.from_bytes(hashlib.sha256(b"stylebot-wm3 layout").digest()[:8], "big")
    rng = np.random.default_rng(seed)
    bit_of = (rng.permutation(_TILE * _TILE) % CODE_BITS).reshape(_TILE, _TILE)
    dither = rng.uniform(0, _SCALE, (_TILE, _TILE))
    for table in (bit_of, dither):
        table.flags.writeable = False
    return _Layout(bit_of, dither)


_LAYOUT = _make_layout()
_DITHER_ANGLE = 2 * np.pi * _LAYOUT.dither / _SCALE
_DITHER_COS, _DITHER_SIN = np.cos(_DITHER_ANGLE), np.sin(_DITHER_ANGLE)
# For ranking placements (_search_shift), a quarter of the code bits: rfft2 of the
# dither's cos and sin masked to each bit, (32, 32, 17), in single precision.
_RANKING_MASKS = (_LAYOUT.bit_of[None] == np.arange(CODE_BITS // 4)[:, None, None]).astype(float)
_RANKING_COS = np.fft.rfft2(_RANKING_MASKS * _DITHER_COS).astype(np.complex64)
_RANKING_SIN = np.fft.rfft2(_RANKING_MASKS * _DITHER_SIN).astype(np.complex64)


def quantise_tiled(low: np.ndarray, bits: np.ndarray) -> None:
    """Embed ``bits`` in the low band with the tiled layout, in place."""
    rows, cols = low.shape[0] // _BLOCK, low.shape[1] // _BLOCK
    tile_rows = (np.arange(rows) % _TILE)[:, None]
    tile_cols = (np.arange(cols) % _TILE)[None, :]
    block_bits = bits[_LAYOUT.bit_of[tile_rows, tile_cols]].reshape(-1)
    dither = _LAYOUT.dither[tile_rows, tile_cols].reshape(-1)
    _quantise_blocks(low, block_bits, dither)


@dataclass(frozen=True)
class _Placement:
    strength: float
    offset: tuple[int, int]  # pixel offset of the block grid in the resampled region
    shift: tuple[int, int]  # tile position of that grid's first block


@dataclass(frozen=True)
class _Look:
    """The picture brought back to one candidate scale, and its best placements there."""

    scale: float
    phase: tuple[float, float]  # sub-pixel shift of the resampling grid (original pixels)
    source: np.ndarray  # the picture, prefiltered for this scale
    region_shape: tuple[int, int]
    window_shape: tuple[int, int]
    window: np.ndarray  # U plane of the central window as found (_nearby moves scale only)
    placements: list[_Placement]

    @property
    def clarity(self) -> float:
        """The best placement's strength over its noise level (which falls as the square
        root of the blocks read), comparable across scales and window sizes."""
        return self.clarity_of(self.placements[0].strength)

    def clarity_of(self, strength: float) -> float:
        """A strength measured on this look's window, over its noise level."""
        blocks = (self.window_shape[0] // _PIXELS_PER_BLOCK) * (
            self.window_shape[1] // _PIXELS_PER_BLOCK
        )
        return strength * float(np.sqrt(blocks))

    def window_at(self, scale: float, phase: tuple[float, float]) -> np.ndarray:
        """The window as it reads at another scale and phase."""
        return _window(self.source, self.window_shape, scale, phase)


def search_tiled(rgb: np.ndarray, rescales: bool = True) -> WatermarkReading | None:
    """Find and read a tiled mark (version 4 or 3) in an RGB array, after crops and (unless
    ``rescales`` is false, which the benchmark uses to measure their part) rescales."""
    height, width = rgb.shape[:2]
    if height * width < MIN_READ_PIXELS:
        return None
    # First, every candidate as found (cheap), most likely first, stopping at the first
    # that decodes: the spectral estimates are a dozen, mostly wrong, but the right one
    # is often within 0.05%, and only a decode tells which.
    looks: list[_Look] = []
    for estimate in rescale_candidates(rgb) if rescales else [1.0]:
        look = _look(rgb, estimate)
        if look is None:
            continue
        reading = _read_at(look.window, look.placements[0])
        if reading is not None:
            return dataclasses.replace(reading, scale=round(look.scale, 4))
        looks.append(look)
    # Then the whole read region, with the scale refined (an estimate may be 1.5% off),
    # for no rescale and the candidates that vote most clearly within 0.5% of themselves
    # (looked at for the clearest few as found, a fraction of the cost of a refinement).
    unscaled = [look for look in looks if look.scale == 1.0]
    clearest = sorted(
        (look for look in looks if look.scale != 1.0), key=lambda look: look.clarity, reverse=True
    )
    ranked = sorted(
        (_nearby(look) for look in clearest[:_RANKED_SCALES]),
        key=lambda ranked: ranked[0],
        reverse=True,
    )
    for look in unscaled + [look for _clarity, look in ranked[:_DECODED_SCALES]]:
        reading = _decode_look(look)
        if reading is not None:
            return reading
    return None


def _nearby(look: _Look) -> tuple[float, _Look]:
    """The look moved to the scale within 0.5% where its best placement votes most
    clearly, and that clarity (comparable across scales, like :attr:`_Look.clarity`)."""
    votes = _votes(look, look.placements[0])
    best, scale = best_nearby(votes, look.scale, look.phase)
    return look.clarity_of(best), dataclasses.replace(look, scale=scale)


def _votes(look: _Look, placement: _Placement) -> Strength:
    """How clearly ``placement`` votes on the look's window resampled at a scale and phase."""
    return lambda scale, phase: _strength_at(look.window_at(scale, phase), placement)


def _window(
    source: np.ndarray, shape: tuple[int, int], scale: float, phase: tuple[float, float]
) -> np.ndarray:
    """The U plane of ``source`` resampled at ``scale`` and ``phase``, sharpened if shrunk."""
    window = _u_plane_of(resample(source, scale, shape, phase))
    return sharpened(window, _SHARPENING) if scale < 1.0 else window


def _look(rgb: np.ndarray, estimate: float) -> _Look | None:
    source = prefiltered(rgb, estimate)
    region_shape = shape_at(rgb, estimate, _READ_SIDE)
    search_side = (
        _SEARCH_SIDE
        if estimate == 1.0
        else _SHRUNK_SEARCH_SIDE
        if estimate < 1.0
        else _RESCALED_SEARCH_SIDE
    )
    window_shape = (
        same_parity(shape_at(rgb, estimate, search_side)[0], region_shape[0]),
        same_parity(shape_at(rgb, estimate, search_side)[1], region_shape[1]),
    )
    if min(window_shape) < _MIN_WINDOW_PIXELS:
        return None
    best: _Look | None = None
    for phase in _PHASES if estimate != 1.0 else _PHASES[:1]:
        window = _window(source, window_shape, estimate, phase)
        placements = _best_placements(window)
        if placements and (best is None or placements[0].strength > best.placements[0].strength):
            best = _Look(estimate, phase, source, region_shape, window_shape, window, placements)
    return best


def _decode_look(look: _Look) -> WatermarkReading | None:
    # A placement found at an estimated scale may be off by a pixel (the estimate is
    # off by up to ~1.5%): refine and decode the best three.
    placements = look.placements[: 2 if look.scale == 1.0 else 3]
    coarse = _coarse_votes(look, placements) if look.scale != 1.0 else []
    top = (look.region_shape[0] - look.window_shape[0]) // 2
    left = (look.region_shape[1] - look.window_shape[1]) // 2
    for number, placement in enumerate(placements):
        scale, phase = look.scale, look.phase
        if scale != 1.0:  # an estimate is within ~1.5%; the mark needs ~0.1%
            scale, phase = refine(_votes(look, placement), coarse[number])
        region = _u_plane_of(resample(look.source, scale, look.region_shape, phase))
        moved = _moved(placement, top, left)
        reading = _read_at(region, moved)
        # A shrunk copy has lost the sharpness of the mark's block edges (and JPEG
        # halves chroma again): sharpened back, the blocks' sums come closer to theirs.
        # How much to sharpen depends on the copy; the votes say which mask suits it.
        if reading is None and scale < 1.0:
            clearest = clearest_deblur(region, functools.partial(_strength_at, placement=moved))
            reading = _read_at(clearest, moved)
        if reading is not None:
            return dataclasses.replace(reading, scale=round(scale, 4))
    return None


def _coarse_votes(
    look: _Look, placements: list[_Placement]
) -> list[dict[tuple[float, tuple[float, float]], float]]:
    """How clearly each placement votes at every scale its refinement starts with: each
    window made once for all of them (making one costs several times a vote)."""
    coarse: list[dict[tuple[float, tuple[float, float]], float]] = [{} for _ in placements]
    for step in coarse_steps(look.scale, look.phase):
        window = look.window_at(*step)
        for votes, placement in zip(coarse, placements, strict=True):
            votes[step] = _strength_at(window, placement)
    return coarse


def _u_plane_of(rgb: np.ndarray) -> np.ndarray:
    return _u_plane(rgb, rgb.shape[0], rgb.shape[1])


def _moved(placement: _Placement, top: int, left: int) -> _Placement:
    """The placement found on a window seen from a region whose pixel (top, left) is the
    window's first: the region's grid starts whole blocks earlier."""
    oy, ox = placement.offset[0] + top, placement.offset[1] + left
    skip_r, skip_c = oy // _PIXELS_PER_BLOCK, ox // _PIXELS_PER_BLOCK
    shift = ((placement.shift[0] - skip_r) % _TILE, (placement.shift[1] - skip_c) % _TILE)
    return _Placement(placement.strength, (oy % _PIXELS_PER_BLOCK, ox % _PIXELS_PER_BLOCK), shift)


def _best_placements(u: np.ndarray) -> list[_Placement]:
    """The placements (pixel offset, tile shift) of ``u``'s block grid whose votes are
    the clearest, best first."""
    found: list[_Placement] = []
    for parity in ((0, 0), (0, 1), (1, 0), (1, 1)):
        sums = pair_sums(u, parity)
        norms = block_norms(sums)
        for dy in range(parity[0], _PIXELS_PER_BLOCK, 2):
            for dx in range(parity[1], _PIXELS_PER_BLOCK, 2):
                # the whole blocks of the low band from this offset (a view: no copy)
                rows, cols = (side // _BLOCK for side in trim(sums, (dy, dx)).shape)
                if rows == 0 or cols == 0:
                    continue
                grid = norms[dy // 2 :: _BLOCK, dx // 2 :: _BLOCK][:rows, :cols]
                strength, shift = _search_shift(2 * np.pi * grid / _SCALE)
                found.append(_Placement(strength, (dy, dx), shift))
    found.sort(key=lambda placement: placement.strength, reverse=True)
    return found


def _search_shift(angle: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Mean |vote| for the best tile shift of a grid of block angles, and the shift.

    Ranking only: a quarter of the code bits, and each bit's vote divided by the mean
    number of blocks per bit rather than its own (a quarter of the FFT work), in single
    precision (a third faster: the FFTs are a large part of the search)."""
    sin_f, cos_f = np.conj(_folded_spectra(angle)).astype(np.complex64)
    votes = np.fft.irfft2(sin_f * _RANKING_COS - cos_f * _RANKING_SIN, s=(_TILE, _TILE))
    strength = np.abs(votes).mean(axis=0) * CODE_BITS / angle.size
    best = np.unravel_index(int(np.argmax(strength)), strength.shape)
    return float(strength[best]), (int(best[0]), int(best[1]))


def _soft_for_shift(angle: np.ndarray, shift: tuple[int, int], centred: bool) -> np.ndarray:
    """(128,): each code bit's mean vote if the grid's first block sits at tile position
    ``shift``: summed block by block (a sixth of the time of correlating every shift by
    FFT and keeping one)."""
    planes = without_local_mean(angle) if centred else sin_cos(angle)
    sin, cos, count = folded((*planes, np.ones(angle.shape)), _TILE)
    # the tile position of each folded block is its own plus the shift (mod 32)
    bit, dither_cos, dither_sin = (
        np.roll(table, (-shift[0], -shift[1]), axis=(0, 1)).ravel()
        for table in (_LAYOUT.bit_of, _DITHER_COS, _DITHER_SIN)
    )
    votes = np.bincount(bit, (sin.ravel() * dither_cos - cos.ravel() * dither_sin), CODE_BITS)
    counts = np.bincount(bit, count.ravel(), CODE_BITS)
    soft: np.ndarray = votes / np.maximum(np.rint(counts), 1)
    return soft


def _folded_spectra(angle: np.ndarray) -> np.ndarray:
    """(2, 32, 17): rfft2 of sin(angle) and cos(angle), less their local mean, summed
    into one tile (by position mod 32)."""
    return np.fft.rfft2(np.stack(folded(without_local_mean(angle), _TILE)))


def _soft_at(u: np.ndarray, placement: _Placement, centred: bool = True) -> np.ndarray:
    """The 128 code bits' mean votes over all of ``u`` at one placement."""
    low = low_band(u, placement.offset)
    blocks, (rows, cols) = _blocks(low)
    angle = 2 * np.pi * largest_singular_fast(blocks) / _SCALE
    return _soft_for_shift(angle.reshape(rows // _BLOCK, cols // _BLOCK), placement.shift, centred)


def _strength_at(u: np.ndarray, placement: _Placement) -> float:
    return float(np.mean(np.abs(_soft_at(u, placement))))


def _read_at(u: np.ndarray, placement: _Placement) -> WatermarkReading | None:
    """Decode the votes of all of ``u`` at one placement, as they are and less their local
    mean (which ranks placements right on plain pictures but takes a little of the mark:
    JPEG q60 at 256 px lost 2 of 5 pictures), each with both codes; the CRC decides."""
    for centred in (False, True):
        bits = _soft_at(u, placement, centred)
        strength = float(np.mean(np.abs(bits)))
        for version in _VERSIONS:
            reading = _decode(bits, strength, version)
            if reading is not None:
                return reading
    return None
