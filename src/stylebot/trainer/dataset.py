"""Turning uploaded reference images into square training images."""

from __future__ import annotations

from PIL import Image, ImageOps


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
    cropped = resized.crop((left, top, left + resolution, top + resolution))
    # Copy the pixels only: a new image carries no `info`/EXIF from the upload.
    clean = Image.new("RGB", cropped.size)
    clean.paste(cropped)
    return clean
