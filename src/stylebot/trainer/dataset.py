"""Turning uploaded reference images into training images."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

# The front end's default upload limit (Settings.max_upload_pixels).
DEFAULT_MAX_PIXELS = 40_000_000


class NotAStoredPng(ValueError):
    """A training image is not the kind of PNG the front end stores."""


def open_stored_png(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a reference image the front end stored (an RGB PNG it re-encoded).

    Only Pillow's PNG decoder runs, and the pixel count from the header is
    checked before any pixel is decoded: a blob that is something else (or a
    decompression bomb) is refused, not parsed by one of Pillow's rarer decoders.
    """
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that: ours is enforced below.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=["PNG"])
        except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise NotAStoredPng(f"a training image is not a readable PNG: {exc}") from exc
    width, height = image.size  # from the header; nothing decoded yet
    if width * height > max_pixels:
        image.close()
        raise NotAStoredPng(
            f"a training image has {width}x{height} pixels, more than the {max_pixels} allowed"
        )
    image.load()
    return image


# An upload is shrunk to at most this many times the training area before the
# trainer sees it: enough for any bucket's cover-and-crop, and a 40 Mpx upload
# does not sit in memory for the whole run.
_MAX_AREA_FACTOR = 4


def prepare_upload(image: Image.Image, resolution: int) -> Image.Image:
    """Upright, RGB, no metadata, its aspect ratio kept (buckets crop it later).

    Phones store rotation in EXIF, so the image is transposed first; large
    images shrink to about `4 * resolution²` pixels.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    upright = ImageOps.exif_transpose(image) or image
    rgb = upright.convert("RGB")
    width, height = rgb.size
    limit = _MAX_AREA_FACTOR * resolution * resolution
    if width * height > limit:
        scale = (limit / (width * height)) ** 0.5
        # Rounded down, so the result never exceeds the limit.
        rgb = rgb.resize(
            (max(1, int(width * scale)), max(1, int(height * scale))),
            Image.Resampling.LANCZOS,
        )
    return _pixels_only(rgb)


def prepare_training_image(image: Image.Image, resolution: int) -> Image.Image:
    """Upright, RGB, short side scaled to `resolution`, centre-cropped square.

    Phones store rotation in EXIF, so the image is transposed first. The result
    is a fresh image with no metadata (EXIF, GPS, ICC) carried over from the upload.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    upright = ImageOps.exif_transpose(image) or image
    rgb = upright.convert("RGB")
    width, height = rgb.size
    scale = resolution / min(width, height)
    # Round up so the short side is never a pixel short of the crop.
    new_size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    resized = rgb.resize(new_size, Image.Resampling.LANCZOS)
    left = (new_size[0] - resolution) // 2
    top = (new_size[1] - resolution) // 2
    return _pixels_only(resized.crop((left, top, left + resolution, top + resolution)))


def _pixels_only(image: Image.Image) -> Image.Image:
    """A copy of the pixels: a new image carries no `info`/EXIF from the upload."""
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    return clean
