"""How much a marked picture was rescaled, guessed from the mark's own block grid.

The mark changes each 8x8-pixel block of the U plane on its own, so a marked picture has
small steps in U every 8 pixels along both axes. Rescaled by ``s``, the steps come every
``8 s`` pixels: the mean absolute step between neighbouring columns (and rows), as a
function of position, has a spectral peak at ``1 / (8 s)``. The peak is found to about
0.1%, which the reader needs (the mark is lost at 0.5% off over 512 pixels).

JPEG has steps of its own, every 8 pixels on luma and 16 on (subsampled) chroma: the part
of the step series that repeats every 16 pixels is taken out, peaks at ``k / 16`` are
skipped, and the scales they would give (1, 1/2, 2/3, 2) are always tried instead. Steps
are clipped at 3 U levels, so the picture's own edges do not drown the mark's small ones.
After JPEG the right peak is often not among the strongest three, so twelve are offered;
the reader ranks them by the mark's own votes, and the error-correcting code and CRC, not
these guesses, decide what is a mark.
"""

from __future__ import annotations

import numpy as np

from stylebot.provenance.watermark import _u_plane

MIN_RESCALE = 0.48  # a little beyond the 0.5x to 2x the reader promises
MAX_RESCALE = 2.1
_BLOCK_PIXELS = 8
_ESTIMATE_SIDE = 1024  # the estimate reads at most this central square of the picture
_PADDED = 1 << 14  # FFT length: frequency steps fine enough for 0.1% on the scale
_PEAKS = 12  # the reader ranks them by the mark's own votes (tiled_watermark)
# A step between neighbours larger than this (U levels) is the picture's own edge, not the
# mark's (whose steps are at most ~6 and mostly 1-3): clipped, so that a few strong edges
# do not drown the grid's many small steps.
_STEP_CLIP = 3.0
_JPEG_PERIOD = 16  # pixels: JPEG's chroma blocks (8x8 samples, subsampled by 2)
# Scales where the mark's grid and JPEG's coincide: always tried, never estimated.
_JPEG_SCALES = (1.0, 0.5, 2 / 3, 2.0)
_JPEG_FREQUENCIES = tuple(k / 16 for k in range(1, 5))
# Within about 2.5% of those scales JPEG's peak swamps ours (a 250 px picture cannot tell
# 1/7.8 from 1/8): the reader tries these instead, each refined over +-1.6%.
_BESIDE_JPEG = (1 - 0.015, 1 + 0.015)
_SAME = 0.004  # relative distance under which two scales (or frequencies) are one


def rescale_candidates(rgb: np.ndarray) -> list[float]:
    """Scales to try, most likely first: 1 (not rescaled), the spectral estimates, then the
    other scales at which JPEG's grid hides ours, and 1.5% either side of each."""
    candidates = [1.0]
    beside = [scale * step for scale in _JPEG_SCALES for step in _BESIDE_JPEG]
    in_range = [scale for scale in beside if 0.5 <= scale <= 2.0]  # the promised range
    for scale in (*_estimated_scales(rgb), *_JPEG_SCALES, *in_range):
        if all(abs(scale / known - 1) > _SAME for known in candidates):
            candidates.append(scale)
    return candidates


def _estimated_scales(rgb: np.ndarray) -> list[float]:
    height, width = rgb.shape[:2]
    side_h, side_w = min(height, _ESTIMATE_SIDE), min(width, _ESTIMATE_SIDE)
    top, left = (height - side_h) // 2, (width - side_w) // 2
    crop = rgb[top : top + side_h, left : left + side_w]
    u = _u_plane(crop, side_h, side_w)
    spectrum = _step_spectrum(u, axis=1) + _step_spectrum(u, axis=0)
    frequencies = np.fft.rfftfreq(_PADDED)
    band = (frequencies > 1 / (_BLOCK_PIXELS * MAX_RESCALE)) & (
        frequencies < 1 / (_BLOCK_PIXELS * MIN_RESCALE)
    )
    for jpeg in _JPEG_FREQUENCIES:
        band &= np.abs(frequencies / jpeg - 1) > _SAME
    inner = spectrum[1:-1]
    is_peak = np.zeros_like(band)
    is_peak[1:-1] = (inner > spectrum[:-2]) & (inner >= spectrum[2:])
    peaks = np.flatnonzero(band & is_peak)
    strongest = peaks[np.argsort(spectrum[peaks])[::-1][:_PEAKS]]
    return [float(1 / (_BLOCK_PIXELS * frequencies[i])) for i in strongest]


def _step_spectrum(u: np.ndarray, axis: int) -> np.ndarray:
    """Magnitude spectrum of the mean |step| between neighbours along ``axis``, without
    the part that repeats every 16 pixels (JPEG's own block edges)."""
    steps = np.minimum(np.abs(np.diff(u, axis=axis)), _STEP_CLIP).mean(axis=1 - axis)
    steps = steps[: len(steps) // _JPEG_PERIOD * _JPEG_PERIOD]
    if len(steps) < 32:
        return np.zeros(_PADDED // 2 + 1)
    by_phase = steps.reshape(-1, _JPEG_PERIOD)
    steps = (by_phase - by_phase.mean(axis=0)).reshape(-1)
    trend = np.convolve(steps, np.ones(17) / 17, mode="same")
    return np.abs(np.fft.rfft((steps - trend) * np.hanning(len(steps)), _PADDED))
