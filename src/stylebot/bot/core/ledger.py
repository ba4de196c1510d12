"""The consent ledger: append-only, hash-chained evidence of what was agreed and revoked.

Every entry names the one before it by hash, so changing, removing or reordering any
entry breaks the chain at that point, and :func:`verify_chain` says where. What an entry
says is its ``payload`` (plain JSON); the rules for what goes into a consent, training and
revocation entry live here too, so that every adapter of the ``ConsentLedger`` port
(:mod:`.ports`) stores the same evidence.

Hashing: ``entry_hash = sha256(canonical JSON of {seq, kind, recorded_at, payload,
prev_hash})``. Canonical JSON (sorted keys, no spaces, UTF-8) makes the hash independent of
how a database happens to store the text, and lets anyone recompute it with a few lines of
any language. The first entry's ``prev_hash`` is :data:`GENESIS_HASH`.

A chain alone cannot show that its newest entries were cut off, or that the whole chain was
rewritten: the head hash (``stylebot consent verify`` prints it) can be written down
elsewhere and checked with ``--expect-head``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

GENESIS_HASH = "0" * 64


class LedgerKind(StrEnum):
    CONSENT = "consent"  # a user confirmed their rights to a set of images
    TRAINING = "training"  # a style was created from a consented set
    REVOCATION = "revocation"  # a style and its images were deleted
    ERASURE = "erasure"  # a user asked for everything of theirs to be erased
    OPTOUT_REMOVAL = "optout-removal"  # an admin removed an /optout registration
    IMAGE_USE = "image-use"  # a user confirmed their right to restyle a picture


@dataclass(frozen=True)
class LedgerEntry:
    seq: int  # 1, 2, 3, ... with no gaps
    kind: str
    recorded_at: datetime  # timezone-aware, UTC
    payload: dict[str, Any]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class ImageEvidence:
    """One consented image: its exact bytes' SHA-256 and a perceptual hash of its pixels."""

    sha256: str
    phash: str


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def utc_text(moment: datetime) -> str:
    """The one textual form of a time, hashed and stored: fixed-width UTC, which sorts in
    time order. Naive datetimes are refused: guessing their zone would shift them."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def compute_entry_hash(
    seq: int, kind: str, recorded_at: datetime, payload: dict[str, Any], prev_hash: str
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "kind": kind,
            "recorded_at": utc_text(recorded_at),
            "payload": payload,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def chain_entry(
    head: LedgerEntry | None, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
) -> LedgerEntry:
    """The entry that follows ``head`` (None: the first entry). Adapters store it as is."""
    # A JSON round trip: what is hashed is exactly what a reader will get back.
    stored = json.loads(canonical_json(payload))
    seq = head.seq + 1 if head is not None else 1
    prev = head.entry_hash if head is not None else GENESIS_HASH
    moment = recorded_at.astimezone(UTC)
    return LedgerEntry(
        seq=seq,
        kind=str(kind),
        recorded_at=moment,
        payload=stored,
        prev_hash=prev,
        entry_hash=compute_entry_hash(seq, str(kind), moment, stored, prev),
    )


@dataclass(frozen=True)
class ChainBreak:
    seq: int  # the entry (or the position, for a gap) where the chain stops holding
    problem: str


@dataclass(frozen=True)
class ChainReport:
    entries: int
    breaks: tuple[ChainBreak, ...]
    head_hash: str  # GENESIS_HASH for an empty ledger

    @property
    def intact(self) -> bool:
        return not self.breaks


def verify_chain(entries: Iterable[LedgerEntry]) -> ChainReport:
    """Recompute every hash and link; report each entry that does not hold.

    Checking goes on past a break so that one report shows every damaged entry; after a
    break the next link is checked against the stored (not recomputed) hash, so a single
    edited row is reported once, not as a cascade.
    """
    breaks: list[ChainBreak] = []
    expected_seq = 1
    prev_hash = GENESIS_HASH
    count = 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            breaks.append(
                ChainBreak(
                    entry.seq,
                    f"expected entry {expected_seq} here, found {entry.seq} "
                    "(entries removed, inserted or reordered)",
                )
            )
        if entry.prev_hash != prev_hash:
            breaks.append(
                ChainBreak(
                    entry.seq,
                    "does not link to the entry before it (prev_hash "
                    f"{entry.prev_hash[:12]}..., expected {prev_hash[:12]}...)",
                )
            )
        try:
            recomputed = compute_entry_hash(
                entry.seq, entry.kind, entry.recorded_at, entry.payload, entry.prev_hash
            )
        except (TypeError, ValueError) as exc:
            breaks.append(ChainBreak(entry.seq, f"cannot be hashed: {exc}"))
        else:
            if recomputed != entry.entry_hash:
                breaks.append(
                    ChainBreak(entry.seq, "its content was changed after it was recorded")
                )
        expected_seq = entry.seq + 1
        prev_hash = entry.entry_hash
    return ChainReport(count, tuple(breaks), prev_hash)


# -- what each kind of entry records -------------------------------------------------


def consent_payload(
    *,
    consent_id: int,
    platform: str,
    platform_user_id: str,
    terms_version: str,
    terms_sha256: str,
    licence: str,
    licence_is_spdx: bool,
    identifiable_people: bool | None,
    people_agreed: bool | None,
    images: Sequence[ImageEvidence],
) -> dict[str, Any]:
    """A user's confirmation for one exact set of images (sorted by SHA-256)."""
    return {
        "consent_id": consent_id,
        "platform": platform,
        "platform_user_id": platform_user_id,
        "terms_version": terms_version,
        "terms_sha256": terms_sha256,
        "licence": licence,
        "licence_is_spdx": licence_is_spdx,
        "rights_confirmed": True,
        "identifiable_people": identifiable_people,
        "people_agreed": people_agreed,
        "images": [
            {"sha256": image.sha256, "phash": image.phash}
            for image in sorted(images, key=lambda i: i.sha256)
        ],
    }


def image_use_payload(
    *,
    job_id: str,
    platform: str,
    platform_user_id: str,
    terms_sha256: str,
    image: ImageEvidence,
    use: str,
) -> dict[str, Any]:
    """A user's confirmation that they made, or may use, one picture that is not a stylebot
    output, for `use` ("restyle"): as a consent entry records training images."""
    return {
        "job_id": job_id,
        "platform": platform,
        "platform_user_id": platform_user_id,
        "terms_sha256": terms_sha256,
        "use": use,
        "rights_confirmed": True,
        "image": {"sha256": image.sha256, "phash": image.phash},
    }


def training_payload(
    *,
    consent_id: int,
    style_id: int,
    platform: str,
    platform_user_id: str,
    base_model: str,
    image_sha256: Sequence[str],
) -> dict[str, Any]:
    """Which style a consented set trained: ties the consent entry to the style.

    By id, not by name: a style's name is free text its owner chose, and the ledger
    outlives an erasure, so it holds ids and hashes only."""
    return {
        "consent_id": consent_id,
        "style_id": style_id,
        "platform": platform,
        "platform_user_id": platform_user_id,
        "base_model": base_model,
        "image_sha256": sorted(image_sha256),
    }


def revocation_payload(
    *,
    style_id: int,
    consent_id: int,
    platform: str,
    platform_user_id: str,
    reason: str,
    image_sha256: Sequence[str],
    deleted_blobs: int,
) -> dict[str, Any]:
    """A style deleted: its images, weights and outputs are gone from this point on."""
    return {
        "style_id": style_id,
        "consent_id": consent_id,
        "platform": platform,
        "platform_user_id": platform_user_id,
        "reason": reason,
        "image_sha256": sorted(image_sha256),
        "deleted_blobs": deleted_blobs,
    }


def erasure_payload(
    *,
    platform: str,
    platform_user_id: str,
    style_ids: Sequence[int],
    uploads: int,
    outputs: int,
    cancelled_jobs: int,
    deleted_blobs: int,
    optouts_kept: int,
) -> dict[str, Any]:
    """A user's data erased at their request. Each of their styles has its own revocation
    entry before this one; this one covers the rest (waiting uploads, their generated
    images, jobs, usage, their user record) and says the erasure was done."""
    return {
        "platform": platform,
        "platform_user_id": platform_user_id,
        "reason": "the user asked for their data to be erased",
        "style_ids": sorted(style_ids),
        "uploads": uploads,
        "outputs": outputs,
        "cancelled_jobs": cancelled_jobs,
        "deleted_blobs": deleted_blobs,
        "optouts_kept": optouts_kept,
    }


def optout_removal_payload(
    *,
    optout_id: int,
    sha256: str,
    phash: str,
    registrant: str,
    registered_at: datetime,
    scope: str | None,
    removed_by: str,
    authority: str,
    reason: str,
) -> dict[str, Any]:
    """An /optout registration an admin removed: from here on copies of that image may be
    trained on again. Who registered it only as their one-way code; who removed it by
    platform id, as the admin log names admins."""
    return {
        "optout_id": optout_id,
        "sha256": sha256,
        "phash": phash,
        "registrant": registrant,
        "registered_at": utc_text(registered_at),
        "scope": scope,
        "removed_by": removed_by,
        "authority": authority,
        "reason": reason,
    }
