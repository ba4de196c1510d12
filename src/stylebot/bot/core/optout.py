"""Opt-out: artists register their own images; near-duplicates uploaded by others are refused.

An image is registered by its perceptual hash (:mod:`.perceptual`), so a re-encoded,
resized or lightly edited copy is still recognised. The registry holds no pixels.

Looking a picture up must not read every registration. The 64-bit hash is cut into
:data:`BAND_COUNT` bands of 16 bits, each stored in an indexed table (multi-index
hashing). Two hashes at most ``t`` bits apart differ in at most ``t // BAND_COUNT`` bits
of at least one band (pigeonhole: otherwise they would differ in more than ``t``). So a
lookup asks the index, for each band, for the values within that radius of the picture's
band (137 values a band for t = 10), and compares only the rows found. With t + 1 bands
of 5-6 bits the radius would be 0, but a 6-bit band matches 1 row in 64 at random, so an
unrelated picture would still read a tenth of the table; a 16-bit band matches 1 in 65536.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stylebot.bot.core.perceptual import PerceptualHash


@dataclass(frozen=True)
class OptedOutImage:
    platform: str
    platform_user_id: str
    sha256: str
    phash: str  # PerceptualHash.hex
    created_at: datetime
    # Where it was registered ("discord:<guild>"; None in a DM): that server's managers
    # review it.
    scope: str | None = None
    # Given by the registry when it reads a row back: the row's id, and a one-way code of
    # who registered it, which an erasure leaves in place (caps and review still hold)
    # while the row stops naming the person.
    id: int = 0
    registrant: str = ""


def find_opted_out(
    registered: Iterable[OptedOutImage],
    sha256: str,
    phash: PerceptualHash,
    platform: str,
    platform_user_id: str,
) -> OptedOutImage | None:
    """The registered image someone else's upload copies, if any.

    The artist's own uploads are never refused: opting out keeps others from training
    on one's work, not oneself.
    """
    for entry in registered:
        if (entry.platform, entry.platform_user_id) == (platform, platform_user_id):
            continue
        if entry.sha256 == sha256 or phash.near(PerceptualHash.from_hex(entry.phash)):
            return entry
    return None
