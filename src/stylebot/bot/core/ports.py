"""The ports of the bot core: what it needs from the outside world.

Adapters implement these (SQLite, the blob store, arq, the watermark reader);
unit tests implement them in memory. The core imports nothing that does I/O.
A Repository raises the errors of `stylebot.bot.core.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind
from stylebot.bot.core.model import (
    Consent,
    Job,
    JobStatus,
    Output,
    Requester,
    Style,
    StyleStatus,
    Upload,
    User,
    Visibility,
)
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.queue.payloads import GenerateJob, JobKind, TrainJob, ValidationPoint


class Repository(Protocol):
    """Records of users, uploads, consents, styles, jobs and outputs.

    Only the front end holds one: workers never write records.
    """

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Group writes so that they all land or none does."""
        ...

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

    async def add_upload(
        self, user_id: int, blob_key: str, display_name: str, width: int, height: int
    ) -> Upload: ...

    async def pending_uploads(self, user_id: int) -> list[Upload]:
        """The user's uploads not yet used by a style, oldest first."""
        ...

    async def discard_pending_uploads(self, user_id: int) -> list[Upload]:
        """Forget the user's pending uploads; returns what was removed."""
        ...

    async def add_consent(
        self,
        user_id: int,
        licence: str,
        terms_version: str,
        rights_confirmed: bool,
        image_hashes: Sequence[str],
        created_at: datetime,
    ) -> Consent: ...

    async def latest_consent(self, user_id: int) -> Consent | None:
        """The user's newest consent not yet tied to a style."""
        ...

    async def add_style(
        self,
        owner_id: int,
        name: str,
        trigger: str,
        consent_id: int,
        base_model: str,
        train_settings: dict[str, object],
        upload_ids: Sequence[int],
        created_at: datetime,
    ) -> Style:
        """Create a style in TRAINING and tie the uploads and consent to it."""
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

    async def set_style_visibility(
        self, style_id: int, visibility: Visibility, shared_scope: str | None = None
    ) -> None:
        """Share or unshare; a scope is required for SERVER and refused otherwise."""
        ...

    async def style_uploads(self, style_id: int) -> list[Upload]: ...

    async def delete_style(self, style_id: int) -> list[str]:
        """Delete a style with its uploads, outputs and consent; jobs keep their
        history without it. Returns every blob key those records named (the
        caller deletes the ones nothing else uses)."""
        ...

    async def unreferenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` no record uses any more: blobs are shared by content,
        so only these are safe to delete."""
        ...

    async def add_job(
        self,
        job_id: str,
        kind: str,
        user_id: int,
        origin: Requester,
        created_at: datetime,
        style_id: int | None = None,
    ) -> Job: ...

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

    async def wipe_deleted(self) -> None:
        """Make what was deleted so far unreadable in the store's files too (SQLite:
        secure_delete zeroes it in the database, and this empties the write-ahead
        log, which still holds the pages as they were). Outside a transaction."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes: the key is the SHA-256 of the content."""

    async def put(self, data: bytes) -> str: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...


class JobQueue(Protocol):
    """Hands work to GPU workers. Events come back through the bot's handle_event."""

    async def enqueue_train(self, job: TrainJob) -> None: ...

    async def enqueue_generate(self, job: GenerateJob) -> None: ...

    async def cancel(self, job_id: str) -> None:
        """Ask workers to drop the job: before it starts, or between two steps."""
        ...

    async def waiting_order(self, kind: JobKind) -> list[str]:
        """Ids of the jobs of one lane (queued, and maybe running) in the order workers
        start them: each job's fair turn, fixed when it was queued. Jobs queued before
        turns were kept are not listed; workers start those first."""
        ...

    async def forget_jobs(self, job_ids: Sequence[str], owner: str | None = None) -> None:
        """On erasure: delete all the queue holds of these jobs (payloads, results,
        events, checkpoints, turns), and `owner`'s place in the fair order. Cancel
        running ones first. Safe to repeat."""
        ...

    async def revoke_blobs(self, keys: Sequence[str]) -> None:
        """Make every worker drop its cached copies of these blobs: those running now,
        and those that start later."""
        ...

    async def erase_from_disk(self) -> None:
        """After the forgetting: have the queue's store rewrite its files, so what was
        deleted is gone from its disk too. Best effort; never raises."""
        ...

    async def untraced(self, job_ids: Sequence[str]) -> set[str]:
        """Of these jobs, those the queue holds nothing of: not waiting, not running,
        no result and no event still on its way to the front end."""
        ...

    async def report_failed(self, job_id: str, kind: JobKind, error: str) -> None:
        """Report the job failed as a worker would: the event comes back through
        `handle_event`, after any event of the job already on its way."""
        ...

    async def worker_alive(self, job_id: str) -> bool:
        """For a job the records say is running: whether a live worker holds it. False
        once its worker died (killed, host lost) until another worker takes it up."""
        ...

    # Every method raises QueueUnavailable (errors.py) when the queue cannot be reached.


class PendingQueueCleanups(Protocol):
    """Queue-side work still owed by an erasure or a style deletion
    (`stylebot.bot.core.queue_cleanup`); it writes on the repository's connection, so
    `add` inside the repository's transaction commits with the deletion."""

    async def add(self, cleanup: QueueCleanup, recorded_at: datetime) -> None: ...

    async def pending(self) -> list[tuple[int, QueueCleanup]]:
        """Oldest first, with the id `done` takes."""
        ...

    async def done(self, cleanup_ids: Sequence[int]) -> None: ...


class WatermarkReader(Protocol):
    """Reads the output id an image's invisible watermark carries."""

    def read(self, image_bytes: bytes) -> str | None: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class ConsentLedger(Protocol):
    """Append-only, hash-chained consent evidence (see stylebot.bot.core.ledger).

    Nothing is ever updated or deleted. The core appends inside the repository
    transaction that writes the records an entry speaks for, and an adapter must make
    the append part of that transaction (the SQLite ledger shares the repository's
    connection): a consent never lands without its entry, nor an entry without it.
    Outside a repository transaction an append commits on its own.
    """

    async def append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        """Chain a new entry after the current head and return it."""
        ...

    async def entries(self) -> list[LedgerEntry]:
        """Every entry as stored, in seq order (unchecked: see verify_chain)."""
        ...


class OptOutRegistry(Protocol):
    """Images artists registered with /optout, by perceptual hash.

    Like the ledger, its writes join a repository transaction that is open (an erasure
    hands the registrations on with the rest, a removal lands with its ledger entry);
    outside one they commit on their own. Each row keeps a one-way code of who
    registered it (`OptedOutImage.registrant`), computed by the registry, so caps and
    review survive the erasure that unlinks the row from the person.
    """

    async def add(self, image: OptedOutImage) -> bool:
        """Register an image; False when this person had already registered it."""
        ...

    async def candidates(
        self, sha256: str, phash: PerceptualHash, max_bits: int
    ) -> list[OptedOutImage]:
        """Registrations that may be within `max_bits` of `phash` or have this `sha256`,
        found through an index (see stylebot.bot.core.optout), never by reading them
        all; a superset: the caller compares the hashes."""
        ...

    async def count_registered_by(
        self, platform: str, platform_user_id: str, since: datetime | None = None
    ) -> int:
        """How many images this person registered (at or after `since`), by their
        registrant code: erasing does not reset the count."""
        ...

    async def count_naming(self, platform: str, platform_user_id: str) -> int:
        """How many registrations still name this person (what an erasure unlinks)."""
        ...

    async def listing(
        self, within: str | None, registrant: str | None = None, limit: int = 50
    ) -> list[OptedOutImage]:
        """Newest first: those registered in scope `within` (None: everywhere), only
        those whose registrant code starts with `registrant` when given."""
        ...

    async def remove(
        self, within: str | None, ids: Sequence[int] = (), registrant: str | None = None
    ) -> list[OptedOutImage]:
        """Delete the registrations with these ids, or all whose registrant code starts
        with `registrant`, among those registered in scope `within` (None: everywhere);
        returns what was deleted."""
        ...

    async def reassign(self, platform: str, platform_user_id: str, anonymous_id: str) -> int:
        """Give this person's registrations to `anonymous_id` (on erasure: the opt-out
        stays in force, no longer linked to them); returns how many."""
        ...


class UsageLog(Protocol):
    """What users and servers asked for, for quotas and rate limits.

    Like the ledger, its writes join a repository transaction that is open (an erasure
    forgets the usage with the rest); outside one they commit on their own.
    """

    async def record(
        self, kind: str, user_key: str, scope: str | None, amount: int, at: datetime
    ) -> None: ...

    async def total(
        self, kind: str, since: datetime, *, user_key: str | None = None, scope: str | None = None
    ) -> int:
        """Sum of amounts of `kind` at or after `since`, for one user or one scope."""
        ...

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        """When the user's requests (any kind) at or after `since` were made, oldest first."""
        ...

    async def forget(self, user_key: str, keep_since: datetime) -> int:
        """On erasure: delete the user's rows from before `keep_since`, and move the later
        ones under a one-way code of `user_key` that only this store can compute, so that
        they still count for the person's limits (and their server's) until they age out
        but no longer name them. Returns how many rows no longer name the user."""
        ...


class ContentCredentialsReader(Protocol):
    """Reads and checks a file's C2PA manifest (stylebot.provenance.content_credentials)."""

    def describe(self, data: bytes) -> str | None:
        """One line on the manifest and its validity; None if the file carries none."""
        ...
