"""Multi-index hashing of 64-bit perceptual hashes, shared by the opt-out registry and
the output fingerprints: one scheme, one implementation.

The hash is cut into :data:`BAND_COUNT` bands of :data:`BAND_BITS` bits, each stored in an
indexed table. Two hashes at most ``t`` bits apart differ in at most ``t // BAND_COUNT``
bits of at least one band (pigeonhole), so asking the index for every value within that
radius of each of the picture's bands finds every candidate. A 16-bit band matches an
unrelated hash 1 time in 65536, so the lookup reads the few rows that may match.
"""

from __future__ import annotations

from itertools import combinations

from stylebot.bot.core.perceptual import PerceptualHash

BAND_COUNT = 4
BAND_BITS = 64 // BAND_COUNT
_BAND_HEX = BAND_BITS // 4


def hash_bands(phash: PerceptualHash) -> list[tuple[int, str]]:
    """(band number, the band's bits as hex) for an informative hash; [] for a flat one,
    which never matches by hash and so is not indexed (migrations 0008 and 0009 write the
    same bands)."""
    if not phash.informative:
        return []
    text = f"{phash.value:016x}"
    return [(n, text[n * _BAND_HEX : (n + 1) * _BAND_HEX]) for n in range(BAND_COUNT)]


def band_probes(phash: PerceptualHash, max_bits: int) -> list[tuple[int, str]]:
    """Every (band, value) a hash within ``max_bits`` of ``phash`` must have in at least
    one band; [] for a flat hash (nothing to look up)."""
    radius = max_bits // BAND_COUNT
    probes: list[tuple[int, str]] = []
    for band, text in hash_bands(phash):
        value = int(text, 16)
        for flips in range(radius + 1):
            for bits in combinations(range(BAND_BITS), flips):
                flipped = value
                for bit in bits:
                    flipped ^= 1 << bit
                probes.append((band, f"{flipped:0{_BAND_HEX}x}"))
    return probes
