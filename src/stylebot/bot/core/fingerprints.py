"""Finding the stored output a picture resembles when its watermark is gone.

Each delivered output keeps its perceptual hash (:mod:`.perceptual`) as its fingerprint.
A lookup must not read every output, so the hash's bands are indexed (:mod:`.hash_bands`,
shared with the opt-out registry; 17 probes a band for t < 8). The candidates are then
compared block by block (:mod:`.aligned_match`) before anything is claimed.
"""

from __future__ import annotations

import asyncio
import logging
import re

from PIL import Image

from stylebot.bot.core.perceptual import perceptual_hash, perceptual_hash_of_png

log = logging.getLogger(__name__)

#: At most this many of the 64 bits may differ for a stored output to be a candidate.
#: JPEG q60-q75, half size and back and Telegram's photo path move 0-4 bits on generated
#: pictures; unrelated pictures differ in ~32 +- 6. Stricter than the opt-out's 10: the
#: claim names a person.
RESEMBLES_MAX_BITS = 6

# What PerceptualHash.hex writes: 64 bits in hex, "flat:" before a flat image's.
_FINGERPRINT = re.compile(r"(flat:)?[0-9a-f]{16}")


def fingerprint_of_image(image: Image.Image) -> str:
    """The fingerprint of an image in memory: a worker takes it from the pixels it made
    (a PNG of them decodes to the same pixels, so to the same fingerprint)."""
    return perceptual_hash(image).hex


async def fingerprint_to_record(reported: str | None, png: bytes) -> str | None:
    """The fingerprint kept for a delivered output: the one its worker reported (taken
    before the PNG was made: no decode on the way of every result, issue 19), or, from
    a worker older than that or a malformed one, the PNG's own, taken in a thread."""
    if reported is not None and _FINGERPRINT.fullmatch(reported):
        return reported
    return await asyncio.to_thread(fingerprint_of_png, png)


def fingerprint_of_png(data: bytes) -> str | None:
    """The fingerprint kept for a delivered output (CPU-bound: run it in a thread); None
    if the worker's blob does not decode, which must not stop the delivery."""
    try:
        return perceptual_hash_of_png(data).hex
    except (OSError, ValueError, Image.DecompressionBombError):
        log.warning("an output image did not decode; it gets no fingerprint")
        return None
