"""Bringing a rescaled picture back to the scale it was marked at, for the mark's reader
(``tiled_watermark.py``): which part of it to read, blurred against aliasing, resampled
centre on centre with a sub-pixel phase."""

from __future__ import annotations

import cv2
import numpy as np


def same_parity(side: int, region: int) -> int:
    """``side``, one less if needed so that a window of it and the region share a centre."""
    return side - (region - side) % 2


def shape_at(rgb: np.ndarray, scale: float, limit: int) -> tuple[int, int]:
    """The picture's size at the original scale, at most ``limit`` a side."""
    return (min(limit, int(rgb.shape[0] / scale)), min(limit, int(rgb.shape[1] / scale)))


def prefiltered(rgb: np.ndarray, scale: float) -> np.ndarray:
    """``rgb``, blurred first if undoing ``scale`` shrinks it (so resampling won't alias)."""
    if scale <= 1.05:
        return rgb
    sigma = 0.45 * scale
    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma)


def resample(
    source: np.ndarray,
    scale: float,
    shape: tuple[int, int],
    phase: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """The central ``shape`` of ``source`` brought back to the original scale, centre on
    centre: output pixel ``x`` reads input ``centre + (x - out centre + phase) * scale``."""
    height, width = source.shape[:2]
    out_h, out_w = shape
    if scale == 1.0 and phase == (0.0, 0.0):
        top, left = (height - out_h) // 2, (width - out_w) // 2
        return np.ascontiguousarray(source[top : top + out_h, left : left + out_w])
    matrix = np.array(
        [
            [scale, 0.0, (width - 1) / 2 - scale * ((out_w - 1) / 2 - phase[1])],
            [0.0, scale, (height - 1) / 2 - scale * ((out_h - 1) / 2 - phase[0])],
        ]
    )
    return cv2.warpAffine(
        np.ascontiguousarray(source),
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
