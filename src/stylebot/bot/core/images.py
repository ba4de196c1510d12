"""Checking and normalising images that users upload (style references).

Pure functions on bytes: no platform imports, no file or network I/O. An upload is either
turned into a :class:`NormalizedImage` (8-bit RGB PNG re-encoded from the pixels alone, so
no EXIF/GPS, text chunks, ICC profile or trailing bytes survive) or refused with
:class:`ImageRejected`, whose ``reason`` is a sentence to show the user as is.

Hostile input is expected. The defences, in order: size in bytes before decoding; only the
PNG, JPEG and WebP decoders are ever run on the data (``Image.open(formats=...)``), so
Pillow's many rarer parsers are out of reach; the pixel count from the header is checked
before any pixel is decoded; the image is then fully decoded (``load()``) so truncation and
corruption surface here and not later in the trainer.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

#: Pillow format name -> file extensions we take for it.
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "WEBP": (".webp",),
}
ALLOWED_EXTENSIONS: frozenset[str] = frozenset(
    ext for exts in _FORMAT_EXTENSIONS.values() for ext in exts
)
_TYPES_WE_TAKE = "PNG, JPEG or WebP"
_MAX_DISPLAY_NAME = 80
# Start of image, and start of scan (0xFF is never followed by 0xDA inside
# entropy-coded data: it is stuffed there as FF 00). Progressive JPEGs from cameras and
# editors have about ten scans; the extra FF DA of an embedded thumbnail or MPF image
# fit well within the limit.
_JPEG_START = b"\xff\xd8"
_JPEG_SCAN = b"\xff\xda"
MAX_JPEG_SCANS = 64
_WHITE = (255, 255, 255)
_JPEGS = ("JPEG", "MPO")  # MPO: a phone's JPEG with extra images, read as JPEG

# Leading bytes of formats people commonly send by mistake, to say what the file really is
# instead of "not an image". Only consulted after the allowed decoders have failed.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an icon (ICO) file"),
    (b"8BPS", "a Photoshop (PSD) file"),
    (b"%PDF", "a PDF document"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
)


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on accepted uploads. Pixel count bounds memory: 40 MP RGB is ~120 MB decoded."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 64
    max_side: int = 8192
    # Per message, checked before any file is decoded (stylebot.bot.core.image_work).
    max_files: int = 20
    max_total_bytes: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class NormalizedImage:
    """An accepted upload, re-encoded. ``sha256`` is of ``data`` (stable for equal pixels)."""

    data: bytes  # PNG bytes re-encoded from the pixels only
    sha256: str
    width: int
    height: int
    source_format: str  # the real format, "PNG", "JPEG" or "WEBP", whatever the name said
    display_name: str  # the upload's name made safe to show; never use it as a path
    # normalize_for_reading only: when any pixel is translucent, the picture composited
    # over black instead of white, as PNG. A translucent file looks different on a dark
    # theme than `data` (over white) shows, so /verify compares both.
    over_black: bytes | None = None


class ImageRejected(Exception):
    """An upload we will not use. ``reason`` says what is wrong and what to do about it.

    ``code`` is a short stable identifier of the check that failed, for logs and tests.
    """

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __str__(self) -> str:
        return self.reason


def safe_display_name(filename: str) -> str:
    """A name that is safe to show: last path component only, no control or format
    characters (which includes bidi overrides like U+202E), whitespace collapsed, at most
    80 characters (keeping the extension visible). Falls back to ``"image"``."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in base
        if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    name = " ".join(kept.split())
    if len(name) > _MAX_DISPLAY_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = f"{stem[: _MAX_DISPLAY_NAME - len(ext) - 2]}….{ext}"
        else:
            name = name[: _MAX_DISPLAY_NAME - 1] + "…"
    return name or "image"


def normalize_upload(
    filename: str, data: bytes, limits: ImageLimits = ImageLimits()
) -> NormalizedImage:
    """Check an uploaded image and return it as a clean 8-bit RGB PNG.

    ``filename`` is only used for its extension and for display. A file whose content is
    an allowed format other than its extension says (a PNG named ``.jpg``) is accepted by
    its real format; content in any other format is refused whatever its name.
    Raises :class:`ImageRejected` for anything we will not take.
    """
    return _normalize(filename, data, limits, None)


def normalize_for_reading(
    filename: str, data: bytes, limits: ImageLimits, max_side: int
) -> NormalizedImage:
    """Like :func:`normalize_upload`, but shrunk to at most ``max_side`` pixels a side, for
    code that only reads the picture (a watermark, a perceptual hash).

    A large JPEG is decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``, nearly free) and
    the rest reduced before any full-size copy exists: an 8000x5000 photo costs a few MB
    instead of ~120 MB per copy. Images already within ``max_side`` are left as they are.
    """
    return _normalize(filename, data, limits, max_side)


def _normalize(
    filename: str, data: bytes, limits: ImageLimits, max_side: int | None
) -> NormalizedImage:
    name = safe_display_name(filename)
    shown = f"“{name}”"
    if not data:
        raise ImageRejected(f"{shown} is empty (0 bytes). Please send the image again.", "empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            f"{shown} is {_megabytes(len(data))}, more than the {_megabytes(limits.max_bytes)}"
            " limit. Please send a smaller image (for example saved as JPEG).",
            "too_many_bytes",
        )
    if data.startswith(_JPEG_START) and data.count(_JPEG_SCAN) > MAX_JPEG_SCANS:
        # libjpeg decodes every scan over the whole picture and only warns about
        # repeated ones: a few hundred KB of copied scans take minutes to decode.
        raise ImageRejected(
            f"{shown} is a JPEG made of {data.count(_JPEG_SCAN)} scans, far more than a "
            "camera or editor writes, and would take too long to read. Please save it "
            "again (any editor will do) and send that.",
            "jpeg_scans",
        )
    extension = _extension(name)
    if extension not in ALLOWED_EXTENSIONS:
        what = f"“{extension}” files" if extension else "files without an extension"
        raise ImageRejected(
            f"{shown}: we don't take {what}. Please send a {_TYPES_WE_TAKE} image "
            f"({', '.join(sorted(ALLOWED_EXTENSIONS))}).",
            "unsupported_type",
        )

    with warnings.catch_warnings():
        # Pillow warns (not raises) between MAX_IMAGE_PIXELS and twice that. Make it an
        # error here only; Image.MAX_IMAGE_PIXELS itself is left alone. catch_warnings is
        # process-global in Python 3.11, so under concurrent calls the filter might be
        # missing briefly; that is harmless because our own max_pixels check below is
        # what enforces the limit.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(_FORMAT_EXTENSIONS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(shown, limits) from exc
        except UnidentifiedImageError as exc:
            raise _unreadable(shown, data) from exc
        except Exception as exc:  # header parsers raise assorted errors on malformed input
            raise _corrupt(shown) from exc
        with image:
            return _check_and_convert(image, name, shown, limits, max_side)


def _check_and_convert(
    image: Image.Image, name: str, shown: str, limits: ImageLimits, max_side: int | None
) -> NormalizedImage:
    source_format = image.format or "?"
    width, height = image.size  # from the header; no pixels decoded yet
    if width * height > limits.max_pixels:
        raise _too_many_pixels(shown, limits, width, height)
    if max(width, height) > limits.max_side:
        raise ImageRejected(
            f"{shown} is {width}×{height} pixels; images can be at most {limits.max_side}"
            " pixels on each side. Please resize it and send it again.",
            "too_large",
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            f"{shown} is only {width}×{height} pixels; images must be at least "
            f"{limits.min_side} pixels on each side. Please send a larger image.",
            "too_small",
        )
    # A phone's JPEG with a second image inside (MPF: an HDR gain map, a depth map) opens
    # as MPO with 2+ "frames"; the first is the photo. Only real animations are refused.
    frames = 1 if source_format == "MPO" else getattr(image, "n_frames", 1)
    if frames > 1:
        raise ImageRejected(
            f"{shown} is animated ({frames} frames). Please send a still image.", "animated"
        )
    if max_side is not None and max(width, height) > max_side and source_format in _JPEGS:
        # Decode at the smallest 1/2^k scale still at least max_side on the long side.
        image.draft(None, _fit(width, height, max_side))
    try:
        image.load()  # full decode: truncated or corrupt data fails here, not in training
    except MemoryError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(shown, limits) from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, ...
        raise _corrupt(shown) from exc

    if max_side is not None and max(image.size) > max_side:
        image = image.resize(_fit(*image.size, max_side), Image.Resampling.LANCZOS)
    upright = _upright(image)
    rgb = _to_rgb(upright)
    png = _clean_png(rgb)
    over_black = _translucent_over_black(upright) if max_side is not None else None
    return NormalizedImage(
        data=png,
        sha256=hashlib.sha256(png).hexdigest(),
        width=rgb.width,
        height=rgb.height,
        source_format=source_format,
        display_name=name,
        over_black=over_black,
    )


def _clean_png(rgb: Image.Image) -> bytes:
    # A brand-new image holds only pixels: no info dict, so no EXIF, ICC, text or dpi can
    # reach the encoder. compress_level is fixed so equal pixels give equal bytes and hash.
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _translucent_over_black(image: Image.Image) -> bytes | None:
    """The picture over black as a clean PNG, if any pixel's alpha is below 255."""
    if not _has_alpha(image):
        return None
    rgba = image.convert("RGBA")
    low, _high = rgba.getchannel("A").getextrema()
    if low == 255:
        return None
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return _clean_png(Image.alpha_composite(black, rgba).convert("RGB"))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size that fits ``width`` x ``height`` within ``max_side``, keeping its shape."""
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, so phone photos are not trained on sideways."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # Malformed EXIF: the pixels are fine, only the orientation hint is unusable, and
        # the EXIF is dropped anyway. Keep the image as stored rather than refuse it.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited over white (what a viewer usually shows)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale PNG (Pillow gives "I;16", older versions "I"). Pillow's
        # convert("L") clips values to 0-255 instead of scaling, which would turn nearly
        # every 16-bit pixel white; scale 0-65535 down to 0-255 first.
        wide = image.convert("I") if mode != "I" else image
        return wide.point(lambda v: v * (1 / 257)).convert("L").convert("RGB")
    if _has_alpha(image):
        rgba = image.convert("RGBA")  # also expands palette and tRNS colour-key transparency
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return f".{ext.lower().strip()}" if dot and stem else ""


def _megabytes(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size:,} bytes"
    return f"{size / (1024 * 1024):.1f} MB"


def _too_many_pixels(
    shown: str, limits: ImageLimits, width: int | None = None, height: int | None = None
) -> ImageRejected:
    size = ""
    if width and height:
        size = f" is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), which"
    return ImageRejected(
        f"{shown}{size} has too many pixels: the limit is {limits.max_pixels / 1e6:g} "
        "megapixels. Please send a smaller image.",
        "too_many_pixels",
    )


def _corrupt(shown: str) -> ImageRejected:
    return ImageRejected(
        f"{shown} is damaged or incomplete (perhaps the upload was cut off), so it can't be "
        "read. Please send it again, or export it again from your image editor.",
        "corrupt",
    )


def _unreadable(shown: str, data: bytes) -> ImageRejected:
    head = data[:512].lstrip()
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            return ImageRejected(
                f"{shown} is {what}, which we don't take. Please convert it to "
                f"{_TYPES_WE_TAKE} and send it again.",
                "unsupported_format",
            )
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftypmsf1"):
        return ImageRejected(
            f"{shown} is a HEIC/AVIF image, which we don't take. Please convert it to "
            f"{_TYPES_WE_TAKE} (on a phone, share it as “Most compatible”/JPEG).",
            "unsupported_format",
        )
    if head.startswith((b"<?xml", b"<svg", b"<!DOCTYPE svg")) or b"<svg" in head.lower():
        return ImageRejected(
            f"{shown} is an SVG drawing, not a picture made of pixels. Please export it as "
            "PNG and send that.",
            "unsupported_format",
        )
    return ImageRejected(
        f"{shown} is not an image we can read. Please send a {_TYPES_WE_TAKE} image.",
        "not_an_image",
    )
