"""Finding the stored output a picture resembles when its watermark is gone.

Each delivered output keeps its perceptual hash (:mod:`.perceptual`) as its fingerprint.
A lookup must not read every output, so the 64-bit hash is cut into :data:`BAND_COUNT`
bands of 16 bits, each stored in an indexed table (multi-index hashing). Two hashes at
most ``t`` bits apart differ in at most ``t // BAND_COUNT`` bits of at least one band
(pigeonhole), so asking the index for every band value within that radius of the
picture's (17 values a band for t < 8) finds every candidate; a 16-bit band matches an
unrelated output 1 time in 65536. The candidates are then compared block by block
(:mod:`.picture_match`) before anything is claimed.
"""

from __future__ import annotations

import logging
from itertools import combinations

from PIL import Image

from stylebot.bot.core.perceptual import PerceptualHash, perceptual_hash_of_png

__all__ = [
    "BAND_BITS",
    "BAND_COUNT",
    "RESEMBLES_MAX_BITS",
    "band_probes",
    "fingerprint_bands",
    "fingerprint_of_png",
]

log = logging.getLogger(__name__)

BAND_COUNT = 4
BAND_BITS = 64 // BAND_COUNT
_BAND_HEX = BAND_BITS // 4
#: At most this many of the 64 bits may differ for a stored output to be a candidate.
#: JPEG q60-q75, half size and back and Telegram's photo path move 0-4 bits on generated
#: pictures; unrelated pictures differ in ~32 +- 6. Stricter than the opt-out's 10: the
#: claim names a person.
RESEMBLES_MAX_BITS = 6


def fingerprint_of_png(data: bytes) -> str | None:
    """The fingerprint kept for a delivered output (CPU-bound: run it in a thread); None
    if the worker's blob does not decode, which must not stop the delivery."""
    try:
        return perceptual_hash_of_png(data).hex
    except (OSError, ValueError, Image.DecompressionBombError):
        log.warning("an output image did not decode; it gets no fingerprint")
        return None


def fingerprint_bands(fingerprint: str) -> list[tuple[int, str]]:
    """(band number, the band's bits as hex) of a stored fingerprint; [] for a flat one,
    which never matches by hash and so is not indexed (migration 0009 writes the same)."""
    phash = PerceptualHash.from_hex(fingerprint)
    if not phash.informative:
        return []
    text = f"{phash.value:016x}"
    return [(n, text[n * _BAND_HEX : (n + 1) * _BAND_HEX]) for n in range(BAND_COUNT)]


def band_probes(phash: PerceptualHash, max_bits: int = RESEMBLES_MAX_BITS) -> list[tuple[int, str]]:
    """Every (band, value) a fingerprint within ``max_bits`` of ``phash`` must have in at
    least one band; [] for a flat hash (nothing to look up)."""
    radius = max_bits // BAND_COUNT
    probes: list[tuple[int, str]] = []
    for band, text in fingerprint_bands(phash.hex):
        value = int(text, 16)
        for flips in range(radius + 1):
            for bits in combinations(range(BAND_BITS), flips):
                flipped = value
                for bit in bits:
                    flipped ^= 1 << bit
                probes.append((band, f"{flipped:0{_BAND_HEX}x}"))
    return probes
