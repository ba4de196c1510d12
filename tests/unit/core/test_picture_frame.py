"""A screenshot's plain frame is found to the pixel, also after JPEG smeared it; a picture
without one has none."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont
from tests.support.watermark_images import reencode, scene

from stylebot.bot.core.picture_frame import plain_frame, without_plain_frame


def framed(picture: Image.Image, border: int, grey: int) -> Image.Image:
    frame = Image.new("RGB", (picture.width + 2 * border, picture.height + 2 * border), (grey,) * 3)
    frame.paste(picture, (border, border))
    return frame


def test_a_plain_frame_is_taken_off_to_the_pixel_after_jpeg() -> None:
    picture = scene(300, 200, seed=3)
    for border, grey in ((2, 30), (3, 120), (6, 240)):
        copy = reencode(framed(picture, border, grey), "JPEG", quality=80)
        inside = without_plain_frame(copy)
        assert inside is not None, (border, grey)
        assert inside.size == picture.size, (border, grey)
        assert without_plain_frame(copy, margin=2).size == (296, 196)  # type: ignore[union-attr]


def test_a_picture_without_a_frame_has_none() -> None:
    assert without_plain_frame(scene(300, 200, seed=4)) is None
    assert without_plain_frame(Image.new("RGB", (300, 200), "white")) is None
    # A frame on three sides only is not a screenshot's.
    picture = framed(scene(300, 200, seed=5), 4, 200).crop((4, 0, 308, 208))
    assert without_plain_frame(picture) is None


def test_a_band_of_the_frames_colour_along_one_side_is_not_frame() -> None:
    """A caption's banner inside a frame of its colour: 16 px at the top, 4 elsewhere."""
    picture = scene(300, 200, seed=6)
    picture.paste((30, 30, 30), (0, 0, 300, 12))
    assert without_plain_frame(framed(picture, 4, 30)) is None


def test_a_frame_with_something_in_it_is_not_plain() -> None:
    """A meme's caption, a sticker, or shapes as light as the frame (the same grey in
    colour): what is in it is not frame, and taking it off would claim what it covers."""
    picture = scene(300, 200, seed=7)
    captioned = framed(picture, 24, 0)
    ImageDraw.Draw(captioned).text((30, 4), "STOLEN", fill="white", font=_font(14))
    sticker = framed(picture, 24, 0)
    ImageDraw.Draw(sticker).ellipse((2, 80, 20, 98), fill=(220, 30, 30))
    same_grey = framed(picture, 24, 128)
    ImageDraw.Draw(same_grey).rectangle((40, 3, 200, 18), fill=(255, 88, 0))  # grey 128
    faint = framed(picture, 48, 255)  # light grey on white, well off the picture
    ImageDraw.Draw(faint).text((60, 6), "STOLEN BY BOB", fill=(215, 215, 215), font=_font(24))
    for copy in (captioned, sticker, same_grey, faint):
        assert without_plain_frame(copy) is None
        assert without_plain_frame(reencode(copy, "JPEG", quality=80)) is None
    # The same frames left plain are taken off, JPEG or not.
    for grey in (0, 128):
        plain = framed(picture, 24, grey)
        for copy in (plain, reencode(plain, "JPEG", quality=80)):
            inside = without_plain_frame(copy)
            assert inside is not None
            assert inside.size == picture.size


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def test_a_strict_frame_is_plain_right_up_to_the_picture() -> None:
    """Faint text in the 16 px next to the picture passes for JPEG's smear, but not in a
    strict frame (the one a "made by" comparison leaves out); a clean frame is found
    either way, and a JPEG's smeared one only without ``strict``."""
    picture = scene(300, 200, seed=3)
    clean = framed(picture, 24, 255)
    signed = clean.copy()
    font = ImageFont.load_default(size=8)
    ImageDraw.Draw(signed).text((40, 24 + 200 + 1), "FAKE", fill=(225,) * 3, font=font)

    assert plain_frame(signed) is not None
    assert plain_frame(signed, strict=True) is None
    found = plain_frame(clean, strict=True)
    assert found is not None
    assert found.inside.size == picture.size
    smeared = reencode(clean, "JPEG", quality=80)
    assert plain_frame(smeared) is not None
    assert plain_frame(smeared, strict=True) is None
