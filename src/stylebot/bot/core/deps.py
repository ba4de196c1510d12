"""What every command handler gets: the core's ports and the operator's policy."""

from __future__ import annotations

from dataclasses import dataclass

from stylebot.bot.core.model import Requester, User
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.ports import BlobStore, Clock, JobQueue, Repository, WatermarkReader


@dataclass
class Deps:
    repo: Repository
    blobs: BlobStore
    queue: JobQueue
    watermark: WatermarkReader
    clock: Clock
    policy: Policy

    async def user(self, requester: Requester) -> User:
        """The requester's user record, created on first sight."""
        return await self.repo.get_or_create_user(
            requester.platform, requester.user_id, requester.display_name
        )
