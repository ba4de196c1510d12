"""The core's record stores, one per aggregate, and the unit of work that hands them out.

A use case that writes to several stores (a consent and its ledger entry; an erasure
and all it removes) does it inside one `async with deps.uow:` block: the writes commit
together when the block ends, or none does if it raises. A store's own writing method
is all or nothing too (inside a block it is a savepoint of it). Stores raise the
errors of `stylebot.bot.core.errors`. Only the front end holds a unit of work:
workers never write records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from stylebot.bot.core.model import (
    Consent,
    Job,
    JobStatus,
    NewConsent,
    NewJob,
    NewStyle,
    Output,
    Style,
    StyleStatus,
    Upload,
    User,
    Visibility,
)
from stylebot.bot.core.ports import (
    ConsentLedger,
    OptOutRegistry,
    PendingQueueCleanups,
    UsageLog,
)
from stylebot.queue.payloads import StyleMetrics, TrainedBase, ValidationPoint


class UserStore(Protocol):
    """Users, by platform id."""

    async def get_or_create_user(
        self, platform: str, platform_user_id: str, display_name: str
    ) -> User: ...

    async def get_user(self, user_id: int) -> User | None: ...

    async def find_user(self, platform: str, platform_user_id: str) -> User | None:
        """The user if we have a record of them; unlike get_or_create_user, creates nothing."""
        ...

    async def erase_user(self, user_id: int) -> list[str]:
        """Delete every remaining record of the user: the outputs they made, their
        uploads, consents and jobs, and the user row. Their styles must be deleted
        first (delete_style), else RepositoryError and nothing changes; RecordNotFound
        if the user does not exist. Returns every
        blob key those records named (the caller deletes the ones nothing else uses)."""
        ...


class UploadStore(Protocol):
    """Training images people upload, pending until a style uses them."""

    async def add_upload(
        self,
        user_id: int,
        blob_key: str,
        display_name: str,
        width: int,
        height: int,
        caption: str | None = None,
    ) -> Upload: ...

    async def set_pending_caption(
        self, user_id: int, upload_id: int, caption: str | None
    ) -> Upload | None:
        """Set (None: clear) the caption of one of the user's pending uploads, which
        drops its suggested caption (the member decided); the changed upload, or None
        when it is not one of them."""
        ...

    async def suggest_pending_captions(self, user_id: int, suggestions: Mapping[str, str]) -> int:
        """Store a captioner's proposals (by image blob key) on the user's pending
        uploads of those images; returns how many uploads got one."""
        ...

    async def pending_uploads(self, user_id: int) -> list[Upload]:
        """The user's uploads not yet used by a style, oldest first."""
        ...

    async def discard_pending_uploads(self, user_id: int) -> list[Upload]:
        """Forget the user's pending uploads; returns what was removed."""
        ...

    async def style_uploads(self, style_id: int) -> list[Upload]: ...


class ConsentStore(Protocol):
    """Consents to train on uploads; a style uses one."""

    async def add_consent(self, new: NewConsent) -> Consent: ...

    async def latest_consent(self, user_id: int) -> Consent | None:
        """The user's newest consent not yet tied to a style."""
        ...


class StyleStore(Protocol):
    """Styles (LoRAs): their training, sharing, exports and deletion."""

    async def add_style(self, new: NewStyle) -> Style:
        """Create a private style in TRAINING and tie the uploads and consent to it. The
        consent must be the owner's and unused, and every upload the owner's and pending;
        otherwise RecordNotFound and nothing changes."""
        ...

    async def get_style(self, style_id: int) -> Style | None: ...

    async def find_style(self, owner_id: int, name: str) -> Style | None: ...

    async def styles_named(self, name: str) -> list[Style]: ...

    async def candidate_styles(self, owner_id: int, scope: str | None) -> list[Style]:
        """Styles the user might use: their own, those shared to `scope`, public ones.

        The core still decides who may use what; this only narrows the search.
        """
        ...

    async def set_style_status(
        self, style_id: int, status: StyleStatus, lora_key: str | None = None
    ) -> None: ...

    async def set_style_export(self, style_id: int, export_key: str) -> None:
        """Record the blob of the style's exportable LoRA file (kohya layout)."""
        ...

    async def set_style_embedding(self, style_id: int, embedding_key: str) -> None:
        """Record the blob of the style's textual-inversion embedding."""
        ...

    async def style_export_key(self, style_id: int) -> str | None:
        """The style's exportable LoRA blob; None for styles trained before there was one.
        RecordNotFound if the style does not exist."""
        ...

    async def set_style_validation(self, style_id: int, curve: Sequence[ValidationPoint]) -> None:
        """Keep the training's validation curve (held-out loss vs the base model's)."""
        ...

    async def style_validation(self, style_id: int) -> tuple[ValidationPoint, ...]:
        """The style's validation curve; empty when it has none. RecordNotFound if the
        style does not exist."""
        ...

    async def set_style_metrics(self, style_id: int, metrics: StyleMetrics) -> None:
        """Keep what the worker's CLIP model measured of the finished style."""
        ...

    async def set_style_base(self, style_id: int, base: TrainedBase) -> None:
        """Keep the base model the worker trained the style on, with its licence."""
        ...

    async def style_metrics(self, style_id: int) -> StyleMetrics | None:
        """The style's CLIP metrics; None when it was not measured. RecordNotFound if
        the style does not exist."""
        ...

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        """Share or unshare; a scope is required for SERVER and refused otherwise."""
        ...

    async def delete_style(self, style_id: int) -> list[str]:
        """Delete a style with its uploads, outputs and consent; jobs keep their
        history without it. Returns every blob key those records named (the
        caller deletes the ones nothing else uses)."""
        ...


class JobStore(Protocol):
    """Training and generation jobs' records (the queue holds the work itself)."""

    async def add_job(self, new: NewJob) -> Job: ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def update_job(
        self,
        job_id: str,
        status: JobStatus,
        updated_at: datetime,
        step: int | None = None,
        total: int | None = None,
        error: str | None = None,
    ) -> None: ...

    async def cancel_active_job(self, job_id: str, updated_at: datetime) -> bool:
        """Mark the job cancelled if it is still queued or running, in one statement;
        False when it had already ended (a worker's result got there first)."""
        ...

    async def active_jobs(self, user_id: int | None = None) -> list[Job]:
        """Jobs not yet finished, failed or cancelled, oldest first."""
        ...

    async def job_ids(
        self, *, user_id: int | None = None, style_id: int | None = None
    ) -> list[str]:
        """Ids of every job, in any state, of the user and/or with the style (what an
        erasure has the queue forget); none when neither is given."""
        ...


class OutputStore(Protocol):
    """Generated images: their parameters, makers and fingerprints."""

    async def add_outputs(self, outputs: Sequence[Output]) -> None: ...

    async def get_output(self, output_id: str) -> Output | None: ...

    async def user_outputs(self, user_id: int) -> list[Output]:
        """The outputs the user made (with any style), oldest first."""
        ...

    async def style_outputs(self, style_id: int) -> list[Output]:
        """The outputs made with the style (by anyone), oldest first."""
        ...

    async def job_outputs(self, job_id: str) -> list[Output]: ...

    async def set_output_blob(self, output_id: str, blob_key: str, seed: int) -> None: ...

    async def set_output_fingerprint(self, output_id: str, fingerprint: str) -> None:
        """Keep the delivered image's fingerprint (PerceptualHash.hex) and index its
        bands (stylebot.bot.core.fingerprints). RecordNotFound if there is no such output."""
        ...

    async def outputs_with_bands(self, probes: Sequence[tuple[int, str]]) -> list[Output]:
        """Outputs whose fingerprint has any of these (band, value) pairs, by index: never
        a scan of every output. The caller checks each one's real distance."""
        ...

    async def delete_output(self, output_id: str) -> str | None:
        """Delete one output record; returns its blob key (None if it had none).
        Raises RecordNotFound when there is no such output."""
        ...


class UnitOfWork(ABC):
    """The stores whose writes must commit together, and their one transaction.

    `async with uow:` opens it (nested, a savepoint: an inner block that raises is
    undone alone); leaving the outermost block commits, an exception rolls back.
    Other tasks wait for an open transaction before they read or write.
    """

    users: UserStore
    uploads: UploadStore
    consents: ConsentStore
    styles: StyleStore
    jobs: JobStore
    outputs: OutputStore
    ledger: ConsentLedger
    optouts: OptOutRegistry
    usage: UsageLog
    cleanups: PendingQueueCleanups

    def __init__(self) -> None:
        # The blocks this task has open on this unit of work, innermost last.
        self._open: ContextVar[tuple[AbstractAsyncContextManager[None], ...]] = ContextVar(
            f"unit_of_work_{id(self)}", default=()
        )

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """One block of `async with uow:`: commit on leaving the outermost one."""

    async def __aenter__(self) -> Self:
        block = self.transaction()
        await block.__aenter__()
        self._open.set((*self._open.get(), block))
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        *outer, block = self._open.get()
        self._open.set(tuple(outer))
        await block.__aexit__(kind, error, traceback)

    @abstractmethod
    async def unreferenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` no record uses any more: blobs are shared by content,
        so only these are safe to delete."""

    @abstractmethod
    async def wipe_deleted(self) -> None:
        """Make what was deleted so far unreadable in the store's files too (SQLite:
        secure_delete zeroes it in the database, and this empties the write-ahead
        log, which still holds the pages as they were). Outside a transaction."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection (after waiting for what is queued on it)."""
