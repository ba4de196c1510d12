"""The last step of placing a picture on a stored output (:mod:`.picture_alignment`):
Lucas-Kanade over every pixel the two share, in scale and offset along each axis."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from stylebot.bot.core.placement import FINE_BLUR, FINE_SIDE, Alignment

_POLISH_STEPS = 4
_MIN_SPREAD = 4.0  # grey levels
_POLISH_MARGIN = 2.0  # output pixels kept clear of the shared part's edges


def polished(picture: Image.Image, output: Image.Image, start: Alignment) -> Alignment:
    """``start`` made exact with every pixel the two share (Lucas-Kanade, in scale and
    offset per axis). Patches place themselves well only where they have texture both
    ways: one whose only feature is an edge could slide along it (the aperture problem),
    and on flat illustrations the patch fit is then off by most of a pixel. Gradients
    weigh each pixel by what it does say. Pixels that differ far more than most (under a
    pasted picture or a banner) are left out of each step."""
    found = start
    factor = FINE_SIDE / max(output.size)  # fine pixels per output pixel
    blur = ImageFilter.GaussianBlur(FINE_BLUR)
    for _ in range(_POLISH_STEPS):
        part = _shared_part(picture.size, output.size, found)
        if part is None:
            return found
        on_picture, on_output = part
        size = (
            max(8, round((on_output[2] - on_output[0]) * factor)),
            max(8, round((on_output[3] - on_output[1]) * factor)),
        )
        shown = _grey(picture, size, on_picture, blur)
        expected = _grey(output, size, on_output, blur)
        step = _lucas_kanade_step(shown, expected)
        if step is None:
            return found
        stretch_x, shift_x, stretch_y, shift_y = step
        # Grid pixel x of the part shows output grid pixel x + stretch (x - c) + shift.
        found = Alignment(
            scale_x=found.scale_x / (1 + stretch_x),
            scale_y=found.scale_y / (1 + stretch_y),
            left=_moved_edge(
                on_picture[0],
                on_output[0],
                on_output[2],
                size[0],
                found.scale_x,
                stretch_x,
                shift_x,
            ),
            top=_moved_edge(
                on_picture[1],
                on_output[1],
                on_output[3],
                size[1],
                found.scale_y,
                stretch_y,
                shift_y,
            ),
        )
        if max(abs(shift_x), abs(shift_y)) < 0.01 and max(abs(stretch_x), abs(stretch_y)) < 1e-5:
            break
    return found


def _moved_edge(
    picture_start: float,
    output_start: float,
    output_end: float,
    pixels: int,
    scale: float,
    stretch: float,
    shift: float,
) -> float:
    """Where the picture's edge falls on the output after a Lucas-Kanade step along one
    axis. Grid pixel x (continuous) is picture ``picture_start + x * p`` and, after the
    step, output ``output_start + o * (x + stretch * (x - c) + shift)``, where ``o`` is
    output pixels per grid pixel and ``p = o * scale``."""
    per_pixel = (output_end - output_start) / pixels
    centre = pixels / 2
    # Picture pixel 0 is grid pixel -picture_start / (per_pixel * scale).
    x = -picture_start / (per_pixel * scale)
    return output_start + per_pixel * (x + stretch * (x - centre) + shift)


def _shared_part(
    picture: tuple[int, int], output: tuple[int, int], placed: Alignment
) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]] | None:
    """The part of the picture that lies on the output (a margin inside its edges), as a
    box on the picture and the same box on the output; None when it is too small."""
    margin = _POLISH_MARGIN
    out_left = max(0.0, placed.left) + margin
    out_top = max(0.0, placed.top) + margin
    out_right = min(float(output[0]), placed.left + picture[0] / placed.scale_x) - margin
    out_bottom = min(float(output[1]), placed.top + picture[1] / placed.scale_y) - margin
    if out_right - out_left < 16 or out_bottom - out_top < 16:
        return None
    on_picture = (
        (out_left - placed.left) * placed.scale_x,
        (out_top - placed.top) * placed.scale_y,
        (out_right - placed.left) * placed.scale_x,
        (out_bottom - placed.top) * placed.scale_y,
    )
    return on_picture, (out_left, out_top, out_right, out_bottom)


def _grey(
    image: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float],
    blur: ImageFilter.Filter,
) -> np.ndarray:
    return np.asarray(
        image.resize(size, Image.Resampling.BILINEAR, box=box).filter(blur), np.float64
    )


def _lucas_kanade_step(
    shown: np.ndarray, expected: np.ndarray
) -> tuple[float, float, float, float] | None:
    """(stretch_x, shift_x, stretch_y, shift_y) such that ``shown`` at grid pixel (x, y)
    is ``expected`` at (x + stretch_x (x - cx) + shift_x, y + stretch_y (y - cy) +
    shift_y), to first order, by least squares over the pixels that differ least (plus a
    brightness offset, which JPEG and colour handling move)."""
    rows, cols = expected.shape
    grad_y, grad_x = np.gradient(expected)
    ys, xs = np.mgrid[0:rows, 0:cols]
    xs = xs - (cols - 1) / 2
    ys = ys - (rows - 1) / 2
    residual = shown - expected
    # Robust spread of the residual (MAD), at least a few grey levels: on flat colours
    # most residuals are exactly 0, and edges a fraction of a pixel off must still count.
    spread = max(_MIN_SPREAD, 1.4826 * float(np.median(np.abs(residual - np.median(residual)))))
    keep = np.abs(residual - np.median(residual)) <= 3 * spread
    # The stretch columns are scaled to pixel units over the part, for conditioning.
    reach_x, reach_y = cols / 2, rows / 2
    columns = np.stack(
        [
            (grad_x * xs / reach_x)[keep],
            grad_x[keep],
            (grad_y * ys / reach_y)[keep],
            grad_y[keep],
            np.ones(int(keep.sum())),
        ],
        axis=1,
    )
    if len(columns) < 64:
        return None
    normal = columns.T @ columns
    if np.linalg.cond(normal) > 1e10:
        return None
    solution = np.linalg.solve(normal, columns.T @ residual[keep])
    stretch_x, shift_x, stretch_y, shift_y = (float(v) for v in solution[:4])
    return stretch_x / reach_x, shift_x, stretch_y / reach_y, shift_y
