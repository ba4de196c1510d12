"""normalize_upload: hostile and broken uploads are refused with a clear reason; valid but
unusual images come out as clean, upright 8-bit RGB PNGs with no metadata."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from stylebot.bot.core.images import (
    ImageLimits,
    ImageRejected,
    NormalizedImage,
    normalize_upload,
    safe_display_name,
)

# --- builders -------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (128, 96), mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels))
    array = pixels.astype(np.uint8)
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming_size(width: int, height: int) -> bytes:
    """A ~100-byte 1-bit PNG whose IHDR claims ``width`` x ``height``: a decompression bomb
    as far as any reader that trusts the header is concerned."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + (png_chunk(b"IEND", b""))
    )


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG; asserts the file ends exactly at the end of IEND."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, pos = [], 8
    while True:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        kinds.append(kind)
        pos += 12 + length
        if kind == b"IEND":
            break
    assert pos == len(data), f"{len(data) - pos} bytes after IEND"
    return kinds


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (96, 96), colour) for colour in ("red", "green", "blue")]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)  # GPSLatitudeRef, GPSLatitude
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)  # GPSLongitudeRef, GPSLongitude
    return exif


def assert_clean_rgb_png(result: NormalizedImage) -> Image.Image:
    """The output is an 8-bit RGB PNG with nothing but IHDR/IDAT/IEND and no trailing bytes."""
    assert set(png_chunks(result.data)) == {b"IHDR", b"IDAT", b"IEND"}
    assert result.data[24:26] == b"\x08\x02"  # IHDR bit depth 8, colour type 2 (RGB)
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert image.info == {}
    assert len(image.getexif()) == 0
    assert (image.width, image.height) == (result.width, result.height)
    image.load()
    return image


# --- refused uploads ------------------------------------------------------------------

PNG = encode(noise(), "PNG")
JPEG = encode(noise(), "JPEG", quality=90)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="99" height="99">'
SVG += b'<rect width="99" height="99" fill="red"/></svg>'

BAD_UPLOADS: list[tuple[str, str, Callable[[], bytes], str, tuple[str, ...]]] = [
    # id, filename, data, expected code, words the reason must contain
    (
        "text",
        "notes.png",
        lambda: b"just some text, not a picture\n" * 4,
        "not_an_image",
        ("not an image", "PNG, JPEG or WebP"),
    ),
    ("zero-bytes", "empty.png", lambda: b"", "empty", ("empty",)),
    (
        "truncated-png",
        "cut.png",
        lambda: PNG[: len(PNG) // 2],
        "corrupt",
        ("damaged or incomplete",),
    ),
    (
        "truncated-jpeg",
        "cut.jpg",
        lambda: JPEG[: len(JPEG) // 2],
        "corrupt",
        ("damaged or incomplete",),
    ),
    ("png-bad-idat", "bad.png", lambda: PNG[:60] + bytes(200) + PNG[260:], "corrupt", ("damaged",)),
    (
        "bomb-header-20000x20000",
        "bomb.png",
        lambda: png_claiming_size(20000, 20000),
        "too_many_pixels",
        ("too many pixels", "40 megapixels"),
    ),
    (
        "bomb-header-7000x7000",
        "bomb.png",
        lambda: png_claiming_size(7000, 7000),
        "too_many_pixels",
        ("7000×7000", "49 megapixels", "40 megapixels"),
    ),
    (
        "exe-extension",
        "setup.exe",
        lambda: PNG,
        "unsupported_type",
        ("“.exe”", "PNG, JPEG or WebP", ".png"),
    ),
    ("gif-extension", "cat.gif", lambda: PNG, "unsupported_type", ("“.gif”",)),
    ("no-extension", "picture", lambda: PNG, "unsupported_type", ("without an extension",)),
    (
        "gif-named-png",
        "cat.png",
        lambda: encode(noise(mode="P"), "GIF"),
        "unsupported_format",
        ("GIF", "convert it"),
    ),
    ("bmp-named-png", "cat.png", lambda: encode(noise(), "BMP"), "unsupported_format", ("BMP",)),
    ("tiff-named-jpg", "cat.jpg", lambda: encode(noise(), "TIFF"), "unsupported_format", ("TIFF",)),
    ("svg-named-png", "logo.png", lambda: SVG, "unsupported_format", ("SVG", "export")),
    (
        "animated-webp",
        "anim.webp",
        lambda: animated("WEBP"),
        "animated",
        ("animated", "3 frames", "still image"),
    ),
    ("animated-png", "anim.png", lambda: animated("PNG"), "animated", ("animated",)),
    (
        "too-small",
        "tiny.png",
        lambda: encode(noise((32, 200)), "PNG"),
        "too_small",
        ("32×200", "at least 64"),
    ),
    (
        "side-too-long",
        "strip.png",
        lambda: encode(Image.new("RGB", (9000, 64)), "PNG"),
        "too_large",
        ("9000×64", "8192"),
    ),
]


@pytest.mark.parametrize(
    ("filename", "make", "code", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_UPLOADS],
)
def test_bad_upload_is_refused_with_a_reason_naming_the_problem(
    filename: str, make: Callable[[], bytes], code: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ImageRejected) as caught:
        normalize_upload(filename, make())
    rejected = caught.value
    assert rejected.code == code
    assert str(rejected) == rejected.reason
    for word in words:
        assert word in rejected.reason
    assert rejected.reason.rstrip().endswith(".")  # a full sentence with what to do


def test_too_many_bytes_is_checked_before_decoding() -> None:
    garbage = b"\x00not an image" * 100  # would be "not an image" if it were decoded
    with pytest.raises(ImageRejected) as caught:
        normalize_upload("big.png", garbage, ImageLimits(max_bytes=1000))
    assert caught.value.code == "too_many_bytes"
    assert "1,300 bytes" in caught.value.reason
    assert "1,000 bytes limit" in caught.value.reason


def test_megabyte_sizes_are_shown_in_mb() -> None:
    with pytest.raises(ImageRejected) as caught:
        normalize_upload("big.png", bytes(3 * 1024 * 1024), ImageLimits(max_bytes=2 * 1024**2))
    assert "3.0 MB, more than the 2.0 MB limit" in caught.value.reason


def test_pillow_bomb_warning_becomes_a_rejection_without_touching_pillow_globals() -> None:
    before = Image.MAX_IMAGE_PIXELS
    assert before is not None
    # Between Pillow's limit and twice it, Pillow only warns; our limit is set above it.
    side = int((before * 1.5) ** 0.5)
    roomy = ImageLimits(max_pixels=before * 4, max_side=side + 1)
    with pytest.raises(ImageRejected) as caught:
        normalize_upload("bomb.png", png_claiming_size(side, side), roomy)
    assert caught.value.code == "too_many_pixels"
    assert before == Image.MAX_IMAGE_PIXELS


def test_pillow_bomb_error_becomes_a_rejection() -> None:
    assert Image.MAX_IMAGE_PIXELS is not None
    side = int((Image.MAX_IMAGE_PIXELS * 3) ** 0.5)
    roomy = ImageLimits(max_pixels=Image.MAX_IMAGE_PIXELS * 10, max_side=side + 1)
    with pytest.raises(ImageRejected) as caught:
        normalize_upload("bomb.png", png_claiming_size(side, side), roomy)
    assert caught.value.code == "too_many_pixels"


# --- accepted uploads -----------------------------------------------------------------


def test_exif_rotated_jpeg_is_turned_upright() -> None:
    stored = Image.new("RGB", (200, 100), "red")
    stored.paste(Image.new("RGB", (100, 100), "blue"), (100, 0))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    result = normalize_upload("phone.jpg", encode(stored, "JPEG", quality=95, exif=exif))
    upright = assert_clean_rgb_png(result)
    assert upright.size == (100, 200)
    top, bottom = upright.getpixel((50, 30)), upright.getpixel((50, 170))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > 200  # the red half is on top
    assert top[2] < 60
    assert bottom[2] > 200
    assert bottom[0] < 60


def test_a_phone_jpeg_with_a_second_image_inside_is_the_photo_not_an_animation() -> None:
    """MPF (HDR gain maps, depth maps): Pillow opens it as MPO with two frames."""
    photo = Image.new("RGB", (120, 90), "red")
    gain_map = Image.new("RGB", (60, 45), "blue")
    data = encode(photo, "MPO", save_all=True, append_images=[gain_map], quality=95)
    with Image.open(io.BytesIO(data)) as opened:
        assert (opened.format, getattr(opened, "n_frames", 1)) == ("MPO", 2)
    result = normalize_upload("IMG_0001.jpg", data)
    image = assert_clean_rgb_png(result)
    assert image.size == (120, 90)  # the photo, not the map
    red, _green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 200
    assert blue < 60


def test_a_jpeg_of_copied_scans_is_refused_before_decoding() -> None:
    """Each repeated progressive scan is decoded over the whole picture: a few hundred
    KB of them took minutes at 8192x4880. Refused from the bytes, without decoding."""
    progressive = encode(noise((64, 64)), "JPEG", progressive=True, quality=90)
    last_scan = progressive.rindex(b"\xff\xda")
    body, end = progressive[last_scan:-2], progressive[-2:]
    bomb = progressive[:-2] + body * 100 + end
    with pytest.raises(ImageRejected) as refused:
        normalize_upload("sunset.jpg", bomb)
    assert refused.value.code == "jpeg_scans"
    assert "save it again" in str(refused.value)
    # An ordinary progressive JPEG is welcome.
    assert normalize_upload("sunset.jpg", progressive).source_format == "JPEG"


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (100, 80), (0, 255, 255, 0))  # full magenta + yellow = red
    result = normalize_upload("print.jpeg", encode(cmyk, "JPEG", quality=95))
    image = assert_clean_rgb_png(result)
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 200
    assert green < 60
    assert blue < 60
    assert result.source_format == "JPEG"


def test_16_bit_png_is_scaled_not_clipped() -> None:
    ramp = (np.linspace(0, 65535, 128 * 128).reshape(128, 128)).astype(np.uint16)
    result = normalize_upload("scan.png", encode(Image.fromarray(ramp), "PNG"))
    pixels = np.asarray(assert_clean_rgb_png(result))
    expected = ramp // 257
    assert np.abs(pixels[:, :, 0].astype(int) - expected).max() <= 1
    assert (pixels[:, :, 0] == pixels[:, :, 2]).all()  # still grey


def test_palette_with_transparency_is_composited_on_white() -> None:
    palette_image = Image.new("P", (80, 80), 0)
    palette_image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette_image.paste(1, (0, 0, 40, 80))  # left half green, right half index 0
    data = encode(palette_image, "PNG", transparency=0)  # index 0 is transparent
    image = assert_clean_rgb_png(normalize_upload("sticker.png", data))
    assert image.getpixel((10, 40)) == (0, 128, 0)
    assert image.getpixel((70, 40)) == (255, 255, 255)


def test_semi_transparent_rgba_and_la_are_composited_on_white() -> None:
    rgba = Image.new("RGBA", (70, 70), (0, 0, 0, 128))
    image = assert_clean_rgb_png(normalize_upload("glass.png", encode(rgba, "PNG")))
    pixel = image.getpixel((5, 5))
    assert isinstance(pixel, tuple)
    assert all(120 <= channel <= 135 for channel in pixel)  # half black over white
    la = Image.new("LA", (70, 70), (0, 0))  # fully transparent black
    image = assert_clean_rgb_png(normalize_upload("ghost.webp", encode(la, "PNG")))
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_greyscale_and_bilevel_become_rgb() -> None:
    grey = noise((90, 90), mode="L")
    image = assert_clean_rgb_png(normalize_upload("grey.png", encode(grey, "PNG")))
    assert (np.asarray(image)[:, :, 1] == np.asarray(grey)).all()
    bilevel = Image.new("1", (90, 90), 1)
    image = assert_clean_rgb_png(normalize_upload("bw.png", encode(bilevel, "PNG")))
    assert image.getpixel((3, 3)) == (255, 255, 255)


def test_webp_is_accepted() -> None:
    original = noise((100, 70))
    result = normalize_upload("art.WEBP", encode(original, "WEBP", lossless=True))
    image = assert_clean_rgb_png(result)
    assert result.source_format == "WEBP"
    assert (np.asarray(image) == np.asarray(original)).all()


def test_jpeg_with_exif_gps_and_icc_comes_out_with_none_of_it() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(noise(), "JPEG", quality=90, exif=exif_with_gps(), icc_profile=icc)
    with Image.open(io.BytesIO(data)) as source:  # the input really carries them
        assert source.getexif().get_ifd(0x8825)
        assert source.info.get("icc_profile")
    result = normalize_upload("holiday.jpg", data)
    assert_clean_rgb_png(result)
    assert b"PhoneMaker" not in result.data
    assert b"Exif" not in result.data


def test_png_with_text_chunks_and_trailing_bytes_is_cleaned() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret comment")
    info.add_text("parameters", "a prompt that should not leak")
    original = noise((100, 100))
    data = encode(original, "PNG", pnginfo=info) + b"TRAILING-PAYLOAD" * 50
    result = normalize_upload("edited.png", data)
    image = assert_clean_rgb_png(result)
    assert b"secret" not in result.data
    assert b"TRAILING" not in result.data
    assert (np.asarray(image) == np.asarray(original)).all()  # the pixels are untouched


@pytest.mark.parametrize(
    ("filename", "data", "real_format"),
    [
        pytest.param("photo.jpg", PNG, "PNG", id="png-named-jpg"),
        pytest.param("photo.png", JPEG, "JPEG", id="jpeg-named-png"),
        pytest.param("PHOTO.JPEG", JPEG, "JPEG", id="upper-case-extension"),
    ],
)
def test_allowed_format_under_another_allowed_extension_is_accepted_by_real_format(
    filename: str, data: bytes, real_format: str
) -> None:
    result = normalize_upload(filename, data)
    assert result.source_format == real_format
    assert_clean_rgb_png(result)


def test_same_pixels_give_the_same_hash() -> None:
    image = noise((120, 80), seed=7)
    plain = normalize_upload("a.png", encode(image, "PNG"))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "different metadata")
    dressed = normalize_upload("b.webp", encode(image, "WEBP", lossless=True))
    tagged = normalize_upload("c.png", encode(image, "PNG", pnginfo=info, compress_level=1))
    assert plain.sha256 == dressed.sha256 == tagged.sha256
    other = normalize_upload("d.png", encode(noise((120, 80), seed=8), "PNG"))
    assert other.sha256 != plain.sha256


# --- display names --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd\x00.png", "passwd.png"),
        ("C:\\Users\\me\\Pictures\\cat.png", "cat.png"),
        ("evil\u202egnp.exe", "evilgnp.exe"),  # right-to-left override removed
        ("tab\tand\nnewline.png", "tab and newline.png"),
        ("   ", "image"),
        ("\x1b[31mred.png", "[31mred.png"),
    ],
)
def test_safe_display_name(filename: str, expected: str) -> None:
    assert safe_display_name(filename) == expected


def test_overlong_name_is_shortened_keeping_the_extension() -> None:
    name = safe_display_name("x" * 5000 + ".png")
    assert len(name) <= 80
    assert name.endswith(".png")


def test_hostile_filename_is_accepted_and_only_shown_safely() -> None:
    result = normalize_upload("../../../tmp/\x07x\u202e" + "a" * 300 + ".PNG", PNG)
    assert_clean_rgb_png(result)
    assert "/" not in result.display_name
    assert "\u202e" not in result.display_name
    assert all(ch.isprintable() for ch in result.display_name)
    assert len(result.display_name) <= 80


def test_rejection_reason_uses_the_safe_name() -> None:
    with pytest.raises(ImageRejected) as caught:
        normalize_upload("dir/evil\u202e\x00.exe", PNG)
    assert "\u202e" not in caught.value.reason
    assert "\x00" not in caught.value.reason
    assert "dir/" not in caught.value.reason
