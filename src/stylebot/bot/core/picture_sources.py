"""The picture an image-to-image job starts from, and the ledger entry of a member's
confirmation that they may use one that is not a stylebot output."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from stylebot.bot.core.deps import Deps
from stylebot.bot.core.ledger import ImageEvidence, LedgerKind, image_use_payload
from stylebot.bot.core.model import User

# What a member confirms of a picture that is not a stylebot output before it is restyled.
PICTURE_RIGHTS_TEXT = (
    "I made this picture, or hold the rights or permission to use it, and to have it "
    "drawn again in a style."
)


@dataclass(frozen=True)
class PictureSource:
    """The picture an image-to-image job starts from. `key`: its blob. `output_id`: the
    stylebot output it is (its stored blob, manifest and all), else None. `upload`: a
    member's own picture, checked and stripped: its bytes, stored with the job's records,
    and its evidence for the ledger entry of their confirmation. `strength`: how much of it
    is drawn again (0-1)."""

    key: str
    strength: float
    output_id: str | None = None
    upload: bytes | None = None
    evidence: ImageEvidence | None = None
    # Extend: where the picture goes on the job's larger canvas (left, top, width, height
    # in pixels); repaint: the box drawn anew. See GenerateJob.
    keep_box: tuple[int, int, int, int] | None = None
    repaint_box: tuple[int, int, int, int] | None = None
    # Repaint by a mask image: its blob (white: drawn anew) and, new, its PNG to store.
    mask_key: str | None = None
    mask_upload: bytes | None = None
    # Follow a sketch: what a text-to-image call follows of the picture ("edges"),
    # `strength` then being how closely (the ControlNet's weight).
    follow: str | None = None


async def record_image_use(
    deps: Deps, user: User, job_id: str, evidence: ImageEvidence, at: datetime
) -> None:
    """The member's confirmation that they may use a picture: in the transaction that
    records the job it is for."""
    payload = image_use_payload(
        job_id=job_id,
        platform=user.platform,
        platform_user_id=user.platform_user_id,
        terms_sha256=hashlib.sha256(PICTURE_RIGHTS_TEXT.encode()).hexdigest(),
        image=evidence,
        use="restyle",
    )
    await deps.uow.ledger.append(LedgerKind.IMAGE_USE, payload, at)
