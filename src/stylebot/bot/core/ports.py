"""The ports of the bot core: what it needs from the outside world.

Adapters implement these (SQLite, the blob store, arq, the watermark reader);
unit tests implement them in memory. The core imports nothing that does I/O.
Records live in the stores of `stylebot.bot.core.stores`, behind its unit of work.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.bot.core.placement import Alignment
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.queue.payloads import CaptionJob, CompareJob, GenerateJob, JobKind, TrainJob


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

    async def enqueue_caption(self, job: CaptionJob) -> None: ...

    async def enqueue_compare(self, job: CompareJob) -> None: ...

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
    (`stylebot.bot.core.queue_cleanup`); a store of the unit of work, so `add` inside
    `async with uow:` commits with the deletion."""

    async def add(self, cleanup: QueueCleanup, recorded_at: datetime) -> None: ...

    async def pending(self) -> list[tuple[int, QueueCleanup]]:
        """Oldest first, with the id `done` takes."""
        ...

    async def done(self, cleanup_ids: Sequence[int]) -> None: ...


class WatermarkReader(Protocol):
    """Reads the output id an image's invisible watermark carries."""

    def read(self, image_bytes: bytes) -> str | None: ...

    def carries(
        self, image_bytes: bytes, output_id: str, output_size: tuple[int, int], placed: Alignment
    ) -> bool:
        """Whether the image carries ``output_id``'s mark where ``placed`` puts it on that
        output (``output_size``: width, height): a narrower question than :meth:`read`,
        for a copy the likeness lookup placed on the output but did not claim."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class ConsentLedger(Protocol):
    """Append-only, hash-chained consent evidence (see stylebot.bot.core.ledger).

    Nothing is ever updated or deleted. A store of the unit of work
    (stylebot.bot.core.stores): the core appends inside the `async with uow:` block that
    writes the records an entry speaks for, so a consent never lands without its entry,
    nor an entry without it. Outside a block an append commits on its own.
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

    Like the ledger, its writes join the unit of work's open transaction (an erasure
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

    Like the ledger, its writes join the unit of work's open transaction (an erasure
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
