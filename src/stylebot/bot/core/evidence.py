"""What the handlers append to the consent ledger, and when.

* consent: on every successful /consent, for the exact set of waiting images (SHA-256 of
  each stored image and a perceptual hash of its pixels), with the terms' version and
  hash, the licence and the identifiable-people answer;
* training: when /train creates a style from a consent, tying the two together;
* revocation: when a style is deleted, in the transaction that deletes its records;
* erasure: when a user's data is erased at their request (bot/core/erasure.py).

Each append happens inside the `async with deps.uow:` block that writes the records it
speaks for, so a record and its evidence land together or not at all. Anything slow
(reading blobs to hash them) is done before that transaction opens.
"""

from __future__ import annotations

from collections.abc import Sequence

from stylebot.bot.core import consent as consent_terms
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.image_work import run_image_work
from stylebot.bot.core.ledger import (
    ImageEvidence,
    LedgerKind,
    consent_payload,
    revocation_payload,
    training_payload,
)
from stylebot.bot.core.model import Consent, Style, Upload, User
from stylebot.bot.core.perceptual import perceptual_hash_of_png

# Licence ids of consent.LICENCES that are not SPDX identifiers.
NOT_SPDX = frozenset({"own-work", "licensed"})


async def consent_images(deps: Deps, uploads: Sequence[Upload]) -> list[ImageEvidence]:
    """The evidence of each image (reads the blobs): done before the consent transaction."""
    # Hashing decodes each image (up to 40 of them, each up to the pixel limit): off the
    # event loop and a few at a time, like every image work (stylebot.bot.core.image_work).
    evidence = []
    for upload in uploads:
        data = await deps.blobs.get(upload.blob_key)
        phash = await run_image_work(deps, perceptual_hash_of_png, data)
        evidence.append(ImageEvidence(upload.blob_key, phash.hex))
    return evidence


async def record_consent(
    deps: Deps,
    user: User,
    consent: Consent,
    images: Sequence[ImageEvidence],
    identifiable_people: bool | None,
    people_agreed: bool | None,
) -> None:
    """Call inside the transaction that added `consent`."""
    payload = consent_payload(
        consent_id=consent.id,
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        terms_version=consent.terms_version,
        terms_sha256=consent_terms.TERMS_SHA256,
        licence=consent.licence,
        licence_is_spdx=consent.licence not in NOT_SPDX,
        identifiable_people=identifiable_people,
        people_agreed=people_agreed,
        images=images,
    )
    await deps.uow.ledger.append(LedgerKind.CONSENT, payload, consent.created_at)


async def record_training(deps: Deps, user: User, style: Style, uploads: Sequence[Upload]) -> None:
    """Call inside the transaction that adds the style."""
    payload = training_payload(
        consent_id=style.consent_id,
        style_id=style.id,
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        base_model=style.base_model,
        image_sha256=[u.blob_key for u in uploads],
    )
    await deps.uow.ledger.append(LedgerKind.TRAINING, payload, style.created_at)


async def record_revocation(
    deps: Deps, style: Style, image_sha256: Sequence[str], deleted_blobs: int, reason: str
) -> None:
    """Call inside the transaction that deletes the style's records."""
    owner = await deps.uow.users.get_user(style.owner_id)
    payload = revocation_payload(
        style_id=style.id,
        consent_id=style.consent_id,
        platform=owner.platform if owner else "?",
        platform_user_id=owner.platform_user_id if owner else "?",
        reason=reason,
        image_sha256=image_sha256,
        deleted_blobs=deleted_blobs,
    )
    await deps.uow.ledger.append(LedgerKind.REVOCATION, payload, deps.clock.now())
