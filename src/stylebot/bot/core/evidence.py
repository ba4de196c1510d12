"""What the handlers append to the consent ledger, and when.

* consent: on every successful /consent, for the exact set of waiting images (SHA-256 of
  each stored image and a perceptual hash of its pixels), with the terms' version and
  hash, the licence and the identifiable-people answer;
* training: when /train creates a style from a consent, tying the two together;
* revocation: when a style is deleted, after its images and weights are gone.
"""

from __future__ import annotations

from collections.abc import Sequence

from stylebot.bot.core import consent as consent_terms
from stylebot.bot.core.deps import Deps
from stylebot.bot.core.ledger import (
    ImageEvidence,
    LedgerKind,
    consent_payload,
    revocation_payload,
    training_payload,
)
from stylebot.bot.core.model import Consent, Style, Upload, User
from stylebot.bot.core.perceptual import perceptual_hash_of_png

__all__ = ["record_consent", "record_revocation", "record_training"]

# Licence ids of consent.LICENCES that are not SPDX identifiers.
_NOT_SPDX = frozenset({"own-work", "licensed"})


async def record_consent(
    deps: Deps,
    user: User,
    consent: Consent,
    uploads: Sequence[Upload],
    identifiable_people: bool | None,
    people_agreed: bool | None,
) -> None:
    if deps.ledger is None:
        return
    images = [
        ImageEvidence(u.blob_key, perceptual_hash_of_png(await deps.blobs.get(u.blob_key)).hex)
        for u in uploads
    ]
    payload = consent_payload(
        consent_id=consent.id,
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        terms_version=consent.terms_version,
        terms_sha256=consent_terms.TERMS_SHA256,
        licence=consent.licence,
        licence_is_spdx=consent.licence not in _NOT_SPDX,
        identifiable_people=identifiable_people,
        people_agreed=people_agreed,
        images=images,
    )
    await deps.ledger.append(LedgerKind.CONSENT, payload, consent.created_at)


async def record_training(deps: Deps, user: User, style: Style, uploads: Sequence[Upload]) -> None:
    if deps.ledger is None:
        return
    payload = training_payload(
        consent_id=style.consent_id,
        style_id=style.id,
        style_name=style.name,
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        base_model=style.base_model,
        image_sha256=[u.blob_key for u in uploads],
    )
    await deps.ledger.append(LedgerKind.TRAINING, payload, style.created_at)


async def record_revocation(
    deps: Deps, style: Style, image_sha256: Sequence[str], deleted_blobs: int, reason: str
) -> None:
    if deps.ledger is None:
        return
    owner = await deps.repo.get_user(style.owner_id)
    payload = revocation_payload(
        style_id=style.id,
        style_name=style.name,
        consent_id=style.consent_id,
        platform=owner.platform if owner else "?",
        platform_user_id=owner.platform_user_id if owner else "?",
        reason=reason,
        image_sha256=image_sha256,
        deleted_blobs=deleted_blobs,
    )
    await deps.ledger.append(LedgerKind.REVOCATION, payload, deps.clock.now())
