"""Replies as plain data. Adapters decide how each looks on their platform.

Texts are plain text: any user-given part (prompt, style or display name) is kept as
typed, and each adapter makes the whole text safe for its platform (markdown,
terminal escapes). A reply marked ``private`` carries what is for the asker's eyes
only (their private style names, prompts, jobs, what erasure would take): adapters
never show it to a group, but to the asker alone (a private chat, an ephemeral answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from stylebot.bot.core.consent import Licence
from stylebot.bot.core.mentions import CommandName, mention
from stylebot.bot.core.model import Output, Requester


@dataclass(frozen=True)
class TextReply:
    text: str
    # For the asker only (see the module doc); the core decides.
    private: bool = False


@dataclass(frozen=True)
class ImageCaption:
    """One image in a caption listing: its number there, its name and caption ("": none),
    and what a captioner proposed for it ("": nothing waits to be accepted)."""

    number: int
    display_name: str
    caption: str
    suggestion: str = ""


@dataclass(frozen=True)
class CaptionList(TextReply):
    """Images with their captions (the text lists them too); ``style`` None: the waiting
    images, which the member may still change (adapters offer their way to)."""

    captions: tuple[ImageCaption, ...] = ()
    style: str | None = None
    # Whether a captioner can suggest captions for these images (`/captions auto`).
    can_suggest: bool = False


@dataclass(frozen=True)
class ErrorReply:
    """Something the user can fix; nothing was changed."""

    text: str


@dataclass(frozen=True)
class TooQuickly(ErrorReply):
    """The rate limit: nothing was done, and the same request may go ahead in
    `retry_after_s` (the verify page says so with HTTP 429 and Retry-After)."""

    retry_after_s: int = 1


class TrainingRefused(ErrorReply):
    """Consent was recorded, but the training it was to start was refused (the name, the
    timing): another name needs no new consent."""


@dataclass(frozen=True)
class ConsentRequest:
    """Ask the user to confirm their rights to the waiting images and pick a licence."""

    text: str
    terms: str
    terms_version: str
    licences: tuple[Licence, ...]
    image_count: int


@dataclass(frozen=True)
class JobQueued:
    text: str
    job_id: str
    kind: str
    position: int


@dataclass(frozen=True)
class JobProgress:
    text: str
    job_id: str
    kind: str
    step: int
    total: int
    loss: float | None = None
    # Seconds left at the recent pace, when the worker knows it.
    eta_s: float | None = None


@dataclass(frozen=True)
class JobFinished:
    """A job ended without images to show (training done, failed or cancelled)."""

    text: str
    job_id: str
    kind: str
    ok: bool
    # For the owner only (a training's end names their style); see the module doc.
    private: bool = False
    # What may be said where others see it when a private text cannot reach its owner
    # (their DMs closed); "" = nothing.
    public_text: str = ""


#: The most a training's end says in a channel: not the style, not how it went.
TRAINING_ENDED_PUBLICLY = (
    f"your training has ended; {mention(CommandName.STYLES)} and "
    f"{mention(CommandName.STATUS)} show the result."
)


@dataclass(frozen=True)
class ImageFile:
    output_id: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class ImagesReady:
    text: str
    job_id: str
    images: tuple[ImageFile, ...]
    # The training job whose preview this is (None for a result): a preview of a
    # style in training is for its owner's eyes only, wherever training was asked.
    preview_of: str | None = None


@dataclass(frozen=True)
class FileReply:
    """A file for the user (a style export): always theirs alone."""

    text: str
    filename: str
    data: bytes
    private: bool = True


@dataclass(frozen=True)
class StyleChoices:
    """Style names for autocomplete, best first."""

    names: tuple[str, ...]


class VerifyVerdict(StrEnum):
    """What /verify concluded about a picture."""

    NO_MARK = "no-mark"  # no watermark, and it resembles no stored output
    RESEMBLES = "resembles"  # no watermark, but it closely resembles a stored output
    UNKNOWN_MARK = "unknown-mark"  # a watermark this bot has no record of
    MADE = "made"  # the mark decodes and the picture matches the output closely
    ALTERED = "altered"  # the mark decodes; some regions differ from the output
    MISMATCH = "mismatch"  # the mark decodes onto a picture that is not the output
    MARK_ONLY = "mark-only"  # the mark decodes; no stored image to compare with


@dataclass(frozen=True)
class VerifyReport:
    """`output_id`: the output the picture's mark names (or, for RESEMBLES, the one it
    resembles). `output`: the whole record, only when the picture is that output (MADE)
    and the asker may see all of it. `differs_percent`: how much of the picture differs
    from the output, when it was compared. `shown_percent` and `scale_percent`, when it
    matched (in part): how much of the output's area it shows (100: all of it) and its
    size against the output's (100: as made; 70: a 0.7x copy)."""

    text: str
    output_id: str | None
    output: Output | None = None
    # Traced to a record, it names its maker, their prompt and style: for the asker only.
    private: bool = False
    verdict: VerifyVerdict = VerifyVerdict.NO_MARK
    differs_percent: int | None = None
    shown_percent: int | None = None
    scale_percent: int | None = None


@dataclass(frozen=True)
class ErasureConfirmation:
    """What /forgetme would erase; adapters offer a confirm button that sends
    EraseMyData(confirmed=True). Nothing has changed yet."""

    text: str
    styles: int
    images: int  # training images and images waiting for training
    outputs: int  # generated images: the user's own, and others' made with their styles
    # It names every style of theirs, private ones too.
    private: bool = True


Reply = (
    TextReply
    | ErrorReply
    | ConsentRequest
    | JobQueued
    | JobProgress
    | JobFinished
    | ImagesReady
    | FileReply
    | StyleChoices
    | VerifyReport
    | ErasureConfirmation
)


def is_private(reply: Reply) -> bool:
    """Whether ``reply`` is for the asker's eyes only (see the module doc)."""
    return bool(getattr(reply, "private", False))


@dataclass(frozen=True)
class Notification:
    """A reply that is not an answer to a command: it goes to where the job came from.

    ``sent`` keeps which of its messages reached the platform, across retries and
    restarts, so that a retry sends only the rest (stylebot.bot.core.delivery)."""

    to: Requester
    reply: Reply
    sent: SentParts | None = field(default=None, compare=False, repr=False)


class SentParts(Protocol):
    """What of one notification reached its platform: part names (the adapter's, or
    :func:`stylebot.bot.core.delivery.image_part` for a result's image) and a note each
    (a message id to reply to, where the part went)."""

    async def sent(self) -> Mapping[str, str]:
        """The parts sent so far, with their notes."""
        ...

    async def mark_sent(self, part: str, note: str = "") -> None:
        """Record that ``part`` reached the platform."""
        ...
