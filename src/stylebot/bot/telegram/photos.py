"""What Telegram takes as a photo, and the preview sent when a result is not that.

A result goes to Telegram twice: as a photo to look at (Telegram re-compresses it,
dropping the provenance) and as the untouched PNG, a document. The Bot API limits both
(https://core.telegram.org/bots/api#sendphoto and #senddocument): "The photo must be at
most 10 MB in size. The photo's width and height must not exceed 10000 in total. Width
and height ratio must be at most 20", and a bot sends other files "of up to 50 MB".
A PNG over the photo limits is shown through a JPEG preview instead (the PNG still
follows as the document, so the provenance stays with the member); a PNG over the
document limit cannot be sent at all.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

#: sendPhoto: at most 10 MB ...
PHOTO_MAX_BYTES = 10 * 1024 * 1024
#: ... width and height at most 10000 together ...
PHOTO_MAX_SIDES = 10_000
#: ... and the long side at most 20 times the short one.
PHOTO_MAX_RATIO = 20
#: The preview's long side and quality: what Telegram makes of a photo anyway.
PREVIEW_SIDE = 1280
PREVIEW_JPEG_QUALITY = 87


def fits_as_photo(data: bytes, width: int, height: int) -> bool:
    return (
        len(data) <= PHOTO_MAX_BYTES
        and width + height <= PHOTO_MAX_SIDES
        and max(width, height) <= PHOTO_MAX_RATIO * min(width, height)
    )


def photo_to_show(data: bytes) -> bytes | None:
    """``data`` itself when Telegram takes it as a photo, else a JPEG preview of it that
    Telegram takes; None when no photo of it can be (a strip thinner than 1:20)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if fits_as_photo(data, width, height):
                return data
            if max(width, height) > PHOTO_MAX_RATIO * min(width, height):
                return None
            preview = image.convert("RGB")
    except (UnidentifiedImageError, OSError):
        return data  # not ours to judge: Telegram says what it makes of it
    preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    preview.save(buffer, format="JPEG", quality=PREVIEW_JPEG_QUALITY)
    return buffer.getvalue()
