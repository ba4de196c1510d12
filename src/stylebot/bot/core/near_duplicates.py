"""Near-duplicate images in one set of training images, pointed out before training.

Two images that look nearly the same (their perceptual hashes within
``NEAR_DUPLICATE_BITS``, the threshold ``/optout`` and ``/verify`` use for "a copy")
weigh twice in training: the style then learns that picture rather than what the
pictures share. The member is told which, and decides; nothing is refused, since a
series of close variations can be meant.
"""

from __future__ import annotations

from collections.abc import Sequence

from stylebot.bot.core.deps import Deps
from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.image_work import run_image_work
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Upload
from stylebot.bot.core.perceptual import PerceptualHash, perceptual_hash_of_png

# The most pairs one reply names; more are counted.
_NAMED_PAIRS = 3

NamedHash = tuple[str, PerceptualHash]


def near_duplicate_pairs(
    waiting: Sequence[NamedHash], new: Sequence[NamedHash]
) -> list[tuple[str, str]]:
    """(earlier, new) names of images that look nearly the same, each pair with at least
    one new image (the waiting ones were pointed out when they came)."""
    pairs: list[tuple[str, str]] = []
    seen = list(waiting)
    for name, phash in new:
        pairs.extend((other, name) for other, other_hash in seen if phash.near(other_hash))
        seen.append((name, phash))
    return pairs


async def waiting_hashes(deps: Deps, uploads: Sequence[Upload]) -> list[NamedHash]:
    """The waiting images' perceptual hashes (reads and decodes each blob, off the loop).
    A damaged or missing one is left out: this is advice, and the upload must still
    succeed (sending that image again repairs it; training says so if it is not)."""
    hashes = []
    for upload in uploads:
        try:
            data = await deps.blobs.get(upload.blob_key)
        except (DamagedBlob, KeyError):
            continue
        phash = await run_image_work(deps, perceptual_hash_of_png, data)
        hashes.append((upload.display_name, phash))
    return hashes


def near_duplicates_note(pairs: Sequence[tuple[str, str]]) -> str:
    """A sentence for the upload's reply, with a leading space ("" without pairs)."""
    if not pairs:
        return ""
    named = "; ".join(f"“{new}” and “{earlier}”" for earlier, new in pairs[:_NAMED_PAIRS])
    more = f" (and {len(pairs) - _NAMED_PAIRS} more pair(s))" if len(pairs) > _NAMED_PAIRS else ""
    return (
        f" These look nearly the same: {named}{more}. A style trained on near-duplicates "
        "learns those pictures more than their style; if you did not mean to send them "
        f"twice, {mention(CommandName.DISCARD)} and send the set without them."
    )
