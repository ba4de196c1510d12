"""/optout: an artist registers their own images; copies uploaded by others are refused.

Only hashes are kept (SHA-256 of the normalised image and its perceptual hash), never the
pixels: registering must not itself put the artist's work in our store.
"""

from __future__ import annotations

import asyncio

from stylebot.bot.core.commands import OptOut
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.images import ImageRejected, NormalizedImage, normalize_upload
from stylebot.bot.core.names import printable
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import perceptual_hash_of_png
from stylebot.bot.core.replies import ErrorReply, Reply, TextReply

__all__ = ["opt_out"]


async def opt_out(deps: Deps, command: OptOut) -> Reply:
    if deps.optouts is None:
        return ErrorReply("Opting out is not set up on this bot; ask its operator.")
    if not command.files:
        return ErrorReply(
            "Attach the images of yours that nobody else may train a style on (PNG, JPEG or WebP)."
        )
    # Check every file before registering any, so a bad file changes nothing.
    checked: list[tuple[NormalizedImage, str]] = []
    for file in command.files:
        try:
            # CPU work (seconds for a large photo): off the event loop, see uploads.py.
            image = await asyncio.to_thread(
                normalize_upload, file.filename, file.data, deps.policy.images
            )
        except ImageRejected as exc:
            return ErrorReply(f"{printable(file.filename)}: {exc.reason} Nothing was registered.")
        phash = await asyncio.to_thread(perceptual_hash_of_png, image.data)
        if not phash.informative:
            return ErrorReply(
                f"“{image.display_name}” is (nearly) one flat colour, so copies of it can't "
                "be told from other flat images. Nothing was registered."
            )
        checked.append((image, phash.hex))
    now = deps.clock.now()
    added = 0
    for image, phash_hex in checked:
        added += await deps.optouts.add(
            OptedOutImage(
                platform=command.requester.platform,
                platform_user_id=command.requester.user_id,
                sha256=image.sha256,
                phash=phash_hex,
                created_at=now,
            )
        )
    again = len(checked) - added
    note = f" ({again} you had registered before)" if again else ""
    return TextReply(
        f"Registered {len(checked)} image(s){note}. From now on, anyone else's upload of "
        "these images, or of close copies (re-saved, resized, lightly edited), is refused. "
        "Only fingerprints are kept, not the images."
    )
