"""What every command handler gets: the core's ports and the operator's policy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stylebot.bot.core.model import Requester, User
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import (
    BlobStore,
    Clock,
    ConsentLedger,
    ContentCredentialsReader,
    JobQueue,
    OptOutRegistry,
    PendingQueueCleanups,
    Repository,
    UsageLog,
    WatermarkReader,
)
from stylebot.bot.core.queue_cleanup import QueueCleanupCarrier

if TYPE_CHECKING:
    from stylebot.bot.core.admin import AdminPorts


@dataclass
class Deps:
    repo: Repository
    blobs: BlobStore
    queue: JobQueue
    watermark: WatermarkReader
    clock: Clock
    policy: Policy
    # None only where nothing looks at consent evidence or opt-outs (some unit tests);
    # the composition root always passes the SQLite ones.
    ledger: ConsentLedger | None = None
    optouts: OptOutRegistry | None = None
    usage: UsageLog | None = None  # None: no quotas or rate limits
    credentials: ContentCredentialsReader | None = None  # None: /verify skips C2PA
    admin: AdminPorts | None = None  # None: no admin commands, nobody banned
    # None: queue clean-ups owed by erasures are kept in memory only (unit tests);
    # the composition root passes the SQLite one.
    cleanups: PendingQueueCleanups | None = None
    queue_cleanup: QueueCleanupCarrier = field(
        default_factory=QueueCleanupCarrier, repr=False, compare=False
    )
    # Requests that count against limits are admitted one at a time: the limits are
    # checked and the request recorded (job, usage) under this lock, so that requests
    # sent at once cannot all pass the same check. One front-end process owns the
    # database (DESIGN.md), so a lock in that process is enough. Erasure and style
    # deletion hold it for their SQLite part only (their queue work runs after it).
    admission: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    # Held from storing an upload's blob until its record exists, and by deleters
    # while they check a blob is unused and delete it (stylebot.bot.core.blobs).
    blob_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    # Image decodes running at once (stylebot.bot.core.image_work); sized from the policy.
    image_work: asyncio.Semaphore = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.image_work = asyncio.Semaphore(max(1, self.policy.image_work_concurrency))

    async def user(self, requester: Requester) -> User:
        """The requester's user record, created on first sight."""
        return await self.repo.get_or_create_user(
            requester.platform, requester.user_id, requester.display_name
        )
