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
    ContentCredentialsReader,
    JobQueue,
    WatermarkReader,
)
from stylebot.bot.core.queue_cleanup import QueueCleanupCarrier
from stylebot.bot.core.stores import UnitOfWork

if TYPE_CHECKING:
    from stylebot.bot.core.admin_ports import AdminPorts


@dataclass
class Deps:
    # The records (users ... outputs, the consent ledger, opt-outs, usage, queue
    # clean-ups owed): what a use case writes in one `async with uow:` commits together.
    uow: UnitOfWork
    blobs: BlobStore
    queue: JobQueue
    watermark: WatermarkReader
    clock: Clock
    policy: Policy
    credentials: ContentCredentialsReader
    admin: AdminPorts
    queue_cleanup: QueueCleanupCarrier = field(
        default_factory=QueueCleanupCarrier, repr=False, compare=False
    )
    # Requests that count against limits are admitted one at a time: the limits are
    # checked and the request recorded (job, usage) under this lock, so that requests
    # sent at once cannot all pass the same check. One front-end process owns the
    # database (docs/architecture.md), so a lock in that process is enough. Erasure and style
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
        return await self.uow.users.get_or_create_user(
            requester.platform, requester.user_id, requester.display_name
        )
