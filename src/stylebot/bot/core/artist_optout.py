"""/optout: an artist registers their own images; copies uploaded by others are refused.

Only hashes are kept (SHA-256 of the normalised image and its perceptual hash), never the
pixels: registering must not itself put the artist's work in our store.

Anyone can register any picture, including someone else's, which would keep its real
artist from training on it. So registrations are capped per person (in all and per day,
counted under a one-way code that erasure does not reset), record where they were made,
and admins can review and remove them (stylebot.bot.core.optout_review).
"""

from __future__ import annotations

from datetime import timedelta

from stylebot.bot.core.commands import OptOut
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.image_work import admit_image_work, run_image_work
from stylebot.bot.core.images import ImageRejected, NormalizedImage, normalize_upload
from stylebot.bot.core.names import printable
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import perceptual_hash_of_png
from stylebot.bot.core.ports import OptOutRegistry
from stylebot.bot.core.replies import ErrorReply, Reply, TextReply


async def opt_out(deps: Deps, command: OptOut) -> Reply:
    if not command.files:
        return ErrorReply(
            "Attach the images of yours that nobody else may train a style on (PNG, JPEG or WebP)."
        )
    refused = await admit_image_work(deps, command.requester, command.files)
    if refused is not None:
        return refused
    refused = await _over_cap(deps, deps.uow.optouts, command)
    if refused is not None:
        return refused
    # Check every file before registering any, so a bad file changes nothing.
    checked: list[tuple[NormalizedImage, str]] = []
    for file in command.files:
        try:
            # CPU work (seconds for a large photo): off the event loop, see uploads.py.
            image = await run_image_work(
                deps, normalize_upload, file.filename, file.data, deps.policy.images
            )
        except ImageRejected as exc:
            return ErrorReply(f"{printable(file.filename)}: {exc.reason} Nothing was registered.")
        phash = await run_image_work(deps, perceptual_hash_of_png, image.data)
        if not phash.informative:
            return ErrorReply(
                f"“{image.display_name}” is (nearly) one flat colour, so copies of it can't "
                "be told from other flat images. Nothing was registered."
            )
        checked.append((image, phash.hex))
    now = deps.clock.now()
    added = 0
    for image, phash_hex in checked:
        added += await deps.uow.optouts.add(
            OptedOutImage(
                platform=command.requester.platform,
                platform_user_id=command.requester.user_id,
                sha256=image.sha256,
                phash=phash_hex,
                created_at=now,
                scope=command.requester.scope,
            )
        )
    again = len(checked) - added
    note = f" ({again} you had registered before)" if again else ""
    return TextReply(
        f"Registered {len(checked)} image(s){note}. From now on, anyone else's upload of "
        "these images, or of close copies (re-saved, resized, lightly edited), is refused. "
        "Only fingerprints are kept, not the images."
    )


async def _over_cap(deps: Deps, registry: OptOutRegistry, command: OptOut) -> ErrorReply | None:
    """A refusal when these images would take the requester past a registration cap.
    Images registered again count too: the check comes before decoding anything."""
    who, p, asked = command.requester, deps.policy, len(command.files)
    caps = (
        (p.optouts_per_user, None, "in all"),
        (p.optouts_per_user_per_day, deps.clock.now() - timedelta(days=1), "a day"),
    )
    for cap, since, per in caps:
        if cap <= 0:
            continue
        done = await registry.count_registered_by(who.platform, who.user_id, since)
        if done + asked > cap:
            return ErrorReply(
                f"You have registered {done} image(s) and may register at most {cap} {per}; "
                f"these {asked} would go over. Nothing was registered. If you need more, "
                "ask the bot's operator."
            )
    return None
