"""Opt-out: artists register their own images; near-duplicates uploaded by others are refused.

An image is registered by its perceptual hash (:mod:`.perceptual`), so a re-encoded,
resized or lightly edited copy is still recognised. The registry holds no pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from stylebot.bot.core.perceptual import PerceptualHash

__all__ = ["OptedOutImage", "find_opted_out"]


@dataclass(frozen=True)
class OptedOutImage:
    platform: str
    platform_user_id: str
    sha256: str
    phash: str  # PerceptualHash.hex
    created_at: datetime


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
