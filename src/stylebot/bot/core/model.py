"""Domain records of the bot core: plain, immutable data with no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from stylebot.queue.payloads import JobKind


class Visibility(StrEnum):
    PRIVATE = "private"
    SERVER = "server"
    PUBLIC = "public"


class StyleStatus(StrEnum):
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class Requester:
    """Who asked, and where the answer goes.

    `server_id` is the Discord guild or Telegram group the command came from
    (None in a direct message or the console); `chat_id` is where replies
    and later notifications are delivered.
    """

    platform: str
    user_id: str
    display_name: str
    chat_id: str
    server_id: str | None = None
    # The platform's @name (Telegram), when the user has one; None where there is none
    # or the platform addresses people by id (Discord mentions).
    username: str | None = None

    @property
    def scope(self) -> str | None:
        """The key a style is shared under: servers are only unique per platform."""
        return f"{self.platform}:{self.server_id}" if self.server_id else None

    @property
    def user_key(self) -> str:
        """Who asked, as admin lists and usage counts name them: user ids are only unique
        per platform."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True)
class User:
    id: int
    platform: str
    platform_user_id: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class Upload:
    """A normalised reference image a user sent, waiting for (or used by) a style."""

    id: int
    user_id: int
    blob_key: str
    display_name: str
    width: int
    height: int
    created_at: datetime
    style_id: int | None = None
    # What the image shows, in the member's words (None: none; it trains on the trigger).
    caption: str | None = None
    # A waiting image's caption as a captioner proposed it (/captions auto): never trained
    # on until the member accepts it, which makes it `caption`.
    suggested_caption: str | None = None


@dataclass(frozen=True)
class Consent:
    """What a user confirmed for one exact set of images (by their hashes)."""

    id: int
    user_id: int
    licence: str
    terms_version: str
    rights_confirmed: bool
    image_hashes: tuple[str, ...]
    created_at: datetime
    style_id: int | None = None
    # The images' captions as confirmed (stylebot.bot.core.captions.captions_digest).
    captions_sha256: str | None = None


@dataclass(frozen=True)
class Style:
    id: int
    owner_id: int
    name: str
    trigger: str
    visibility: Visibility
    status: StyleStatus
    consent_id: int
    base_model: str
    created_at: datetime
    shared_scope: str | None = None
    lora_key: str | None = None
    train_settings: dict[str, object] = field(default_factory=dict)
    # The style token's textual-inversion embedding (None: a LoRA-only style).
    embedding_key: str | None = None
    # What the worker trained it on (queue.payloads.TrainedBase); None until it
    # finished, or for styles trained before this was recorded.
    base_model_variant: str | None = None
    base_model_sha256: str | None = None
    base_model_licence: str | None = None
    base_model_licence_url: str | None = None


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKind
    user_id: int
    origin: Requester
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    style_id: int | None = None
    step: int = 0
    total: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Output:
    """One generated image. Its id is what the watermark carries."""

    id: str
    job_id: str
    user_id: int
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    created_at: datetime
    style_id: int | None = None
    blob_key: str | None = None
    # Who made it as they were then: their display name and @name at the time (None for
    # outputs recorded before these were kept), and whether it was made in private (a
    # direct message, or with a private style; None: not recorded).
    maker_name: str | None = None
    maker_username: str | None = None
    made_in_private: bool | None = None
    # PerceptualHash.hex of the delivered image, for /verify's lookup of pictures whose
    # watermark is gone (None until delivered, or for older outputs).
    fingerprint: str | None = None
    # A restyle: the blob of the picture it was made from, that picture's output id when
    # it was a stylebot output, and how much of it was drawn again (0-1). None: from text.
    source_key: str | None = None
    source_output_id: str | None = None
    denoising_strength: float | None = None
    # Extend: where the picture went on the canvas; repaint: the region drawn anew
    # (left, top, width, height in pixels).
    keep_box: tuple[int, int, int, int] | None = None
    repaint_box: tuple[int, int, int, int] | None = None
    # Repaint by a mask image: the blob of its black-and-white PNG (white: drawn anew).
    mask_key: str | None = None
    # A sketch: what it followed of the source ("edges"); denoising_strength is then the
    # ControlNet's weight (how closely it followed).
    follow: str | None = None


# What the stores' add_* methods record; the store gives the new record its id.
@dataclass(frozen=True)
class NewConsent:
    user_id: int
    licence: str
    terms_version: str
    rights_confirmed: bool
    image_hashes: Sequence[str]
    created_at: datetime
    # The SHA-256 of the images' captions as agreed (uploads.captions_digest); None
    # when they had none.
    captions_sha256: str | None = None


@dataclass(frozen=True)
class NewStyle:
    owner_id: int
    name: str
    trigger: str
    consent_id: int
    base_model: str
    train_settings: dict[str, object]
    upload_ids: Sequence[int]
    created_at: datetime


@dataclass(frozen=True)
class NewJob:
    job_id: str
    kind: JobKind
    user_id: int
    origin: Requester
    created_at: datetime
    style_id: int | None = None
