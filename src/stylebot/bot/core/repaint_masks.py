"""/repaint's mask image: white is drawn anew, black is kept.

The mask is an upload like the picture (`normalize_for_reading`: only the PNG, JPEG and
WebP decoders, the byte and pixel limits first). It is scaled to the job's size and
thresholded there, so the job stores exactly the black-and-white mask it is drawn with
(a small PNG blob, named by `GenerateJob.mask_key`). A translucent mask (white strokes on
a transparent layer, as drawing programs save them) is read over black: what is not
painted is kept.
"""

from __future__ import annotations

import io

from PIL import Image

from stylebot.bot.core.commands import IncomingFile
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.image_work import run_image_work
from stylebot.bot.core.images import ImageLimits, ImageRejected, normalize_for_reading
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.names import printable
from stylebot.bot.core.replies import ErrorReply

# A grey pixel counts as white from half way (the engine's mask_from_png does the same).
WHITE_FROM = 128

MASK_EMPTY = (
    "The mask has no white in it: paint white where the picture should be drawn anew, "
    "black where it stays. Nothing was queued."
)
MASK_FULL = (
    "The mask is white all over, so nothing of the picture would stay: use "
    f"{mention(CommandName.RESTYLE)} to draw all of it again, or paint black where it "
    "should stay. Nothing was queued."
)


class MaskRefused(Exception):
    """A mask that cannot be used; ``reason`` is shown to the member."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def thresholded_mask(png: bytes, width: int, height: int) -> bytes:
    """A decoded mask (clean PNG bytes) at `width` x `height` as a black-and-white PNG
    (white: repainted). Raises MaskRefused when it has no white or no black."""
    with Image.open(io.BytesIO(png), formats=["PNG"]) as opened:
        grey = opened.convert("L").resize((width, height), Image.Resampling.BILINEAR)
    mask = grey.point(lambda level: 255 if level >= WHITE_FROM else 0)
    low, high = mask.getextrema()
    if high == 0:
        raise MaskRefused(MASK_EMPTY)
    if low == 255:
        raise MaskRefused(MASK_FULL)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG", compress_level=6)  # fixed: equal masks, equal blobs
    return buffer.getvalue()


def checked_mask(
    filename: str, data: bytes, limits: ImageLimits, max_side: int, width: int, height: int
) -> bytes:
    """An uploaded mask checked, decoded and thresholded at the job's size."""
    image = normalize_for_reading(filename, data, limits, max_side)
    return thresholded_mask(image.over_black or image.data, width, height)


async def repaint_mask(
    deps: Deps, file: IncomingFile, width: int, height: int
) -> bytes | ErrorReply:
    """The mask PNG for a `width` x `height` job, or why it is refused."""
    try:
        return await run_image_work(
            deps,
            checked_mask,
            file.filename,
            file.data,
            deps.policy.images,
            deps.policy.max_size,
            width,
            height,
        )
    except ImageRejected as exc:
        return ErrorReply(f"The mask {printable(file.filename)}: {exc.reason} Nothing was queued.")
    except MaskRefused as exc:
        return ErrorReply(exc.reason)
