"""Where a submitted picture sits on a stored output: how much it was rescaled and which
part of the output it shows, so that a crop or a rescale can be compared, region by
region, with the part of the output it shows (:mod:`.aligned_match`).

Three steps on greyscale, numpy and Pillow only (the front end has no OpenCV or torch):

1. Coarse: the output at a long side of :data:`COARSE_SIDE` pixels; the picture at each
   of a bounded set of scales, :data:`_SCALE_STEP` apart and only those at which it could
   show at least :data:`MIN_SHOWN_SHARE` of the output, is located on it by phase
   correlation. The placement whose overlap correlates best wins.
2. Fine: at :data:`.placement.FINE_SIDE` pixels (the finest level the comparison looks
   at), a grid of patches of the picture is located on the output near where step 1 put
   them (normalised cross-correlation, with a sub-pixel peak). A line through their
   positions gives the scale along each axis and the offset; patches off the line that
   most of them agree on (under a pasted picture or a banner) are left out. Two
   different scales mean the picture was stretched.
3. Exact: Lucas-Kanade over every pixel the two share (:mod:`.placement_polish`), which
   the patches of a flat illustration need (an edge alone does not say where along it a
   patch sits).

Nothing here decides what the picture is: an unrelated picture is still placed somewhere,
and the block comparison then finds that it differs.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from stylebot.bot.core.placement import FINE_BLUR, FINE_SIDE, Alignment
from stylebot.bot.core.placement_polish import polished

#: Long side of the output in the coarse search: enough for the shapes of a picture, and
#: each of the ~30 scales tried costs one small FFT.
COARSE_SIDE = 128
#: The least share of the output's area a picture may show and still be compared: a
#: smaller piece has too few blocks to say much, and the coarse search would need to try
#: too many scales.
MIN_SHOWN_SHARE = 0.25
#: Up to this share of a picture's width or height may be something other than the
#: output (a screenshot's frame, a picture set beside it): it is still placed, and the
#: comparison counts what lies beyond the output as not the maker's.
_MAX_FRAME = 0.25
#: Scales tried in the coarse step are this factor apart; the fine step corrects the rest
#: (a patch far from the centre moves by at most half a step times its distance).
_SCALE_STEP = 1.04
#: A whole-side fit (1, or the scale at which the picture's width or height is the
#: output's) that correlates this well is taken without trying the grid: a crop, a
#: rescale or the output itself, the usual cases, cost a few FFTs.
_SURE = 0.9
_PATCH = 64  # fine patch side, pixels at FINE_SIDE
_PATCH_GRID = 5  # patches per axis
#: How far (pixels at FINE_SIDE) a patch is searched around where the coarse step puts
#: it: a coarse pixel is FINE_SIDE / COARSE_SIDE = 4, plus half a scale step at the edge.
_PATCH_SEARCH = 14
_MIN_PATCH_STD = 2.0  # a flatter patch (a plain background, a banner) cannot be located
_MIN_PATCH_CORRELATION = 0.6  # a patch that matches less well is not where it was found
_MAX_RESIDUAL = 1.5  # pixels at FINE_SIDE from the fitted line, or the patch is dropped
_MIN_FITTED_PATCHES = 4


def align(picture: Image.Image, output: Image.Image, *, thorough: bool = True) -> Alignment | None:
    """Where ``picture`` sits on ``output``, or None when it can't be placed (too small,
    or flat). ``thorough=False`` tries only the scales that fit a whole side, and gives
    up unless one correlates clearly (enough when the picture's fingerprint already
    matched the output's as a whole). CPU-bound:
    call it in a worker thread."""
    grey_output = output.convert("L")
    grey_picture = picture.convert("L")
    coarse = _coarse(grey_picture, grey_output, thorough)
    # Without the grid, only a clear whole-side fit is worth refining: the unrelated
    # candidates a fingerprint lookup brings cost a few small FFTs each, not a fit.
    if coarse is None or (not thorough and coarse[0] < _SURE):
        return None
    found = coarse[1]
    fine = _fine(grey_picture, grey_output, found)
    return polished(grey_picture, grey_output, fine) if fine else None


def _resized(
    image: Image.Image, factor: float, blur: ImageFilter.Filter | None = None
) -> tuple[np.ndarray, float, float]:
    """``image`` resized by about ``factor`` (to whole pixels), then blurred if asked, and
    the factors it got."""
    width = max(1, round(image.width * factor))
    height = max(1, round(image.height * factor))
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized.filter(blur) if blur else resized, np.float64)
    return pixels, width / image.width, height / image.height


def _scales_to_try(
    picture: tuple[int, int], output: tuple[int, int], thorough: bool = True
) -> tuple[list[float], list[float]]:
    """Picture pixels per output pixel at which the picture shows at least
    MIN_SHOWN_SHARE of the output (with at most _MAX_FRAME of its own): 1 and the
    scales that fit a whole side, then (if ``thorough``) a geometric grid."""
    fits = (picture[0] / output[0], picture[1] / output[1])
    lowest = max(fits) * (1 - _MAX_FRAME)
    highest = math.sqrt(picture[0] * picture[1] / (MIN_SHOWN_SHARE * output[0] * output[1]))
    if highest < lowest:
        return [], []  # not a piece of the output: a different shape than any crop of it
    exact = [s for s in (1.0, *fits) if lowest <= s <= highest]
    if not thorough:
        return exact, []
    steps = max(1, math.ceil(math.log(highest / lowest) / math.log(_SCALE_STEP)))
    return exact, [lowest * (highest / lowest) ** (i / steps) for i in range(steps + 1)]


def _coarse(
    picture: Image.Image, output: Image.Image, thorough: bool
) -> tuple[float, Alignment] | None:
    """The best placement over the scales tried, and how well it correlates."""
    factor = COARSE_SIDE / max(output.size)
    reference, fx, fy = _resized(output, factor)
    exact, grid = _scales_to_try(picture.size, output.size, thorough)
    if not exact + grid:
        return None
    lowest = min(exact + grid)
    # Shrink a large picture once: every scale is then resized from the small copy.
    # `kept` is small-copy pixels per picture pixel.
    kept = min(1.0, 2 * factor / lowest)
    small = picture
    if kept < 1:
        small = picture.resize(
            (max(1, round(picture.width * kept)), max(1, round(picture.height * kept))),
            Image.Resampling.BOX,
        )
    kept_x, kept_y = small.width / picture.width, small.height / picture.height
    # One FFT size for every scale (room for the largest resized picture), so the
    # reference's spectrum is computed once.
    shape = (
        _fast_length(reference.shape[0] + math.ceil(picture.height * factor / lowest) + 1),
        _fast_length(reference.shape[1] + math.ceil(picture.width * factor / lowest) + 1),
    )
    spectrum = np.fft.rfft2(reference - reference.mean(), s=shape)
    best: tuple[float, Alignment] | None = None
    for index, scale in enumerate(exact + grid):
        if index == len(exact) and best is not None and best[0] >= _SURE:
            break  # a whole-side fit matches clearly: the grid would not do better
        moving, mx, my = _resized(small, factor / (scale * kept_x))
        if min(moving.shape) < 8 or moving.std() < _MIN_PATCH_STD:
            continue
        ty, tx = _locate(spectrum, reference.shape, moving)
        # Over the whole picture: a placement that leaves out the part that does not
        # match (a banner) must not win by correlating better over what is left.
        correlation = _overlap_correlation(reference, moving, round(ty), round(tx))
        # moving pixel = picture pixel * (m * kept); output pixel = reference pixel / f.
        candidate = Alignment(
            scale_x=fx / (mx * kept_x),
            scale_y=fy / (my * kept_y),
            left=tx / fx,
            top=ty / fy,
        )
        if best is None or correlation > best[0]:
            best = (correlation, candidate)
    return best


def _fast_length(length: int) -> int:
    """The least length at or above ``length`` whose only prime factors are 2, 3 and 5
    (where the FFT is fastest)."""
    while True:
        rest = length
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 1


def _locate(
    spectrum: np.ndarray, reference_shape: tuple[int, ...], moving: np.ndarray
) -> tuple[float, float]:
    """Where ``moving``'s top-left corner best sits on the reference whose centred
    spectrum is ``spectrum`` (pixels, sub-pixel, negative or past the edge when it sticks
    out), by phase correlation. The FFT size must hold both side by side."""
    shape = (spectrum.shape[0], (spectrum.shape[1] - 1) * 2)
    cross = spectrum * np.conj(np.fft.rfft2(moving - moving.mean(), s=shape))
    surface = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=shape)
    peak_y, peak_x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = _sub_pixel(surface[(peak_y + np.arange(-1, 2)) % shape[0], peak_x])
    dx = _sub_pixel(surface[peak_y, (peak_x + np.arange(-1, 2)) % shape[1]])
    # Indices past the reference wrap around: the picture starts before its edge.
    y = peak_y - shape[0] if peak_y >= reference_shape[0] else peak_y
    x = peak_x - shape[1] if peak_x >= reference_shape[1] else peak_x
    return float(y + dy), float(x + dx)


def _sub_pixel(values: np.ndarray) -> float:
    """The vertex of the parabola through three samples around a peak, -0.5 to 0.5."""
    before, at, after = (float(v) for v in values)
    curvature = before - 2 * at + after
    if curvature >= 0:
        return 0.0
    return max(-0.5, min(0.5, 0.5 * (before - after) / curvature))


def _overlap_correlation(reference: np.ndarray, moving: np.ndarray, top: int, left: int) -> float:
    """Pearson correlation of ``moving`` placed at (top, left) with the reference where
    they overlap, times the share of ``moving`` that overlaps; -1 when hardly any does."""
    y0, x0 = max(0, top), max(0, left)
    y1 = min(reference.shape[0], top + moving.shape[0])
    x1 = min(reference.shape[1], left + moving.shape[1])
    if y1 - y0 < 4 or x1 - x0 < 4:
        return -1.0
    a = reference[y0:y1, x0:x1]
    b = moving[y0 - top : y1 - top, x0 - left : x1 - left]
    return _correlation(a, b) * a.size / moving.size


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    norm = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else -1.0


def _fine(picture: Image.Image, output: Image.Image, coarse: Alignment) -> Alignment | None:
    """``coarse`` refined from where patches of the picture sit on the output, or None
    when too few patches could be placed (a flat picture, or a piece too small)."""
    factor = FINE_SIDE / max(output.size)
    # A light blur evens out JPEG's and resampling's noise, which the two do not share.
    blur = ImageFilter.GaussianBlur(FINE_BLUR)
    reference, gx, gy = _resized(output, factor, blur)
    moving, hx, hy = _resized(picture, gx / coarse.scale_x, blur)
    # Samples: a patch's centre in picture pixels and where it was found in output pixels.
    along_x: list[tuple[float, float]] = []
    along_y: list[tuple[float, float]] = []
    for py in _patch_starts(moving.shape[0]):
        for px in _patch_starts(moving.shape[1]):
            patch = moving[py : py + _PATCH, px : px + _PATCH]
            if patch.std() < _MIN_PATCH_STD:
                continue
            # Where the coarse placement puts the patch's top-left on the reference.
            at_y = round(gy * (coarse.top + py / (hy * coarse.scale_y))) - _PATCH_SEARCH
            at_x = round(gx * (coarse.left + px / (hx * coarse.scale_x))) - _PATCH_SEARCH
            # The search region, cut at the reference's edges (a patch on the picture's
            # edge is often on the output's).
            y0, x0 = max(0, at_y), max(0, at_x)
            side = _PATCH + 2 * _PATCH_SEARCH
            y1 = min(reference.shape[0], at_y + side)
            x1 = min(reference.shape[1], at_x + side)
            if y1 - y0 < _PATCH or x1 - x0 < _PATCH:
                continue
            region = reference[y0:y1, x0:x1]
            dy, dx, correlation = _match(region, patch)
            # Found on the region's border, the best place may lie beyond it (off the
            # output's edge, under a frame): the position says nothing.
            inside = 0 < dy < y1 - y0 - _PATCH and 0 < dx < x1 - x0 - _PATCH
            if correlation < _MIN_PATCH_CORRELATION or not inside:
                continue
            at_y, at_x = y0, x0
            along_x.append(((px + _PATCH / 2) / hx, (at_x + dx + _PATCH / 2) / gx))
            along_y.append(((py + _PATCH / 2) / hy, (at_y + dy + _PATCH / 2) / gy))
    fit = _fit_lines(along_x, along_y, 1 / gx)
    if fit is None:
        return None
    (slope_x, left), (slope_y, top) = fit
    return Alignment(scale_x=1 / slope_x, scale_y=1 / slope_y, left=left, top=top)


def _match(region: np.ndarray, patch: np.ndarray) -> tuple[float, float, float]:
    """Where ``patch`` (wholly inside ``region``) matches best: its top-left corner
    (sub-pixel) and the normalised cross-correlation there. Unlike phase correlation this
    does not amplify the fine noise JPEG and resampling leave, and its peak is smooth
    enough to read between pixels."""
    ph, pw = patch.shape
    rows, cols = region.shape[0] - ph + 1, region.shape[1] - pw + 1
    centred = patch - patch.mean()
    products = np.fft.irfft2(
        np.fft.rfft2(region) * np.conj(np.fft.rfft2(centred, s=region.shape)), s=region.shape
    )[:rows, :cols]
    # Sums of the region and of its squares over every window, from integral images.
    sums = _window_sums(region, ph, pw)
    squares = _window_sums(region * region, ph, pw)
    spread = np.maximum(squares - sums * sums / (ph * pw), 1e-9)
    surface = products / np.sqrt(spread * float((centred * centred).sum()) + 1e-9)
    y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = _sub_pixel(surface[y - 1 : y + 2, x]) if 0 < y < rows - 1 else 0.0
    dx = _sub_pixel(surface[y, x - 1 : x + 2]) if 0 < x < cols - 1 else 0.0
    return y + dy, x + dx, float(surface[y, x])


def _window_sums(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    table = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1))
    table[1:, 1:] = plane.cumsum(axis=0).cumsum(axis=1)
    result: np.ndarray = (
        table[height:, width:] - table[:-height, width:] - table[height:, :-width]
    ) + table[:-height, :-width]
    return result


def _patch_starts(length: int) -> list[int]:
    if length < _PATCH:
        return []
    if length < 2 * _PATCH:
        return [(length - _PATCH) // 2]
    return [round(i * (length - _PATCH) / (_PATCH_GRID - 1)) for i in range(_PATCH_GRID)]


Line = tuple[float, float]  # slope, intercept


def _fit_lines(
    along_x: list[tuple[float, float]], along_y: list[tuple[float, float]], pixel: float
) -> tuple[Line, Line] | None:
    """Lines output = slope * picture + intercept along x and y through the patches,
    leaving out those more than _MAX_RESIDUAL fine pixels (``pixel`` output pixels each)
    off either line; None when fewer than _MIN_FITTED_PATCHES agree or they don't span.

    Patches under a pasted picture can match by chance far off: a least-squares line
    through all of them would lean towards those, so the line that most patches agree
    with is found first (through every pair of patches, as in RANSAC, but exhaustive:
    there are at most 25), and only its patches are fitted."""
    xs, ys = np.array(along_x).reshape(-1, 2), np.array(along_y).reshape(-1, 2)
    tolerance = _MAX_RESIDUAL * pixel
    agree = _agreeing(xs, tolerance) & _agreeing(ys, tolerance)
    if agree.sum() < _MIN_FITTED_PATCHES:
        return None
    line_x, line_y = _line(xs[agree]), _line(ys[agree])
    if line_x is None or line_y is None:
        return None
    return line_x, line_y


def _agreeing(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Which points lie within ``tolerance`` of the line through two of them that the
    most points lie near."""
    best = np.zeros(len(points), dtype=bool)
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            run = points[j, 0] - points[i, 0]
            if abs(run) < _PATCH / 2:
                continue
            slope = (points[j, 1] - points[i, 1]) / run
            residual = np.abs(points[i, 1] + slope * (points[:, 0] - points[i, 0]) - points[:, 1])
            near = residual <= tolerance
            if near.sum() > best.sum():
                best = near
    return best


def _line(points: np.ndarray) -> Line | None:
    if np.ptp(points[:, 0]) < _PATCH:
        return None  # all in one column or row: no scale to read
    slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
    return float(slope), float(intercept)
