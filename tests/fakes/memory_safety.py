"""In-memory fakes of the consent ledger, the opt-out registry, the usage log and the
pending queue clean-ups. Built by an `InMemoryUnitOfWork` (tests/fakes/memory.py) their
rows live in its tables and roll back with its transactions, as the SQLite ones do;
built alone, they keep tables of their own.

`tests/integration/safety/test_safety_storage.py` runs one contract suite over these and
the SQLite adapters.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from stylebot.bot.core.ledger import LedgerEntry, LedgerKind, chain_entry
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.bot.core.queue_cleanup import QueueCleanup
from tests.fakes.memory_tables import MemoryStore, TablesOwner, UsageEvent

__all__ = [
    "InMemoryConsentLedger",
    "InMemoryOptOutRegistry",
    "InMemoryPendingQueueCleanups",
    "InMemoryUsageLog",
]


class InMemoryConsentLedger(MemoryStore):
    @property
    def rows(self) -> list[LedgerEntry]:
        return cast(list[LedgerEntry], self._t.ledger)

    async def append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        async with self.transaction():
            return self._append(kind, payload, recorded_at)

    def _append(
        self, kind: LedgerKind, payload: dict[str, Any], recorded_at: datetime
    ) -> LedgerEntry:
        rows = self.rows
        entry = chain_entry(rows[-1] if rows else None, kind, payload, recorded_at)
        rows.append(entry)
        return entry

    async def entries(self) -> list[LedgerEntry]:
        async with self._reading():
            # Copies, like rows read back from a database: callers cannot edit ours.
            return [replace(e, payload=json.loads(json.dumps(e.payload))) for e in self.rows]

    def of_kind(self, kind: LedgerKind) -> list[LedgerEntry]:
        return [e for e in self.rows if e.kind == kind]


class InMemoryOptOutRegistry(MemoryStore):
    """Finds candidates by comparing every row: the contract (a superset of the near
    ones) holds; being indexed is the SQLite registry's own test. Like the port, it has
    no way to read every row at once (tests look at `images`)."""

    def __init__(self, owner: TablesOwner | None = None) -> None:
        super().__init__(owner)
        self._salt = secrets.token_hex(8)
        self._next_id = 1

    @property
    def images(self) -> list[OptedOutImage]:
        return self._t.optout_images

    @images.setter
    def images(self, images: list[OptedOutImage]) -> None:
        self._t.optout_images = images

    def _registrant(self, platform: str, platform_user_id: str) -> str:
        who = f"{self._salt}:{platform}:{platform_user_id}"
        return hashlib.sha256(who.encode()).hexdigest()[:32]

    async def add(self, image: OptedOutImage) -> bool:
        if image.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        key = (image.platform, image.platform_user_id, image.sha256)
        if any((i.platform, i.platform_user_id, i.sha256) == key for i in self.images):
            return False
        registrant = self._registrant(image.platform, image.platform_user_id)
        self.images.append(replace(image, id=self._next_id, registrant=registrant))
        self._next_id += 1
        return True

    async def candidates(
        self, sha256: str, phash: PerceptualHash, max_bits: int
    ) -> list[OptedOutImage]:
        return [
            i
            for i in self.images
            if i.sha256 == sha256 or phash.near(PerceptualHash.from_hex(i.phash), max_bits)
        ]

    async def count_registered_by(
        self, platform: str, platform_user_id: str, since: datetime | None = None
    ) -> int:
        registrant = self._registrant(platform, platform_user_id)
        return sum(
            1
            for i in self.images
            if i.registrant == registrant and (since is None or i.created_at >= since)
        )

    async def count_naming(self, platform: str, platform_user_id: str) -> int:
        person = (platform, platform_user_id)
        return sum(1 for i in self.images if (i.platform, i.platform_user_id) == person)

    def _chosen(
        self, within: str | None, ids: Sequence[int], registrant: str | None
    ) -> list[OptedOutImage]:
        return [
            i
            for i in self.images
            if (within is None or i.scope == within)
            and (not ids or i.id in ids)
            and (registrant is None or i.registrant.startswith(registrant))
        ]

    async def listing(
        self, within: str | None, registrant: str | None = None, limit: int = 50
    ) -> list[OptedOutImage]:
        return list(reversed(self._chosen(within, (), registrant)))[:limit]

    async def remove(
        self, within: str | None, ids: Sequence[int] = (), registrant: str | None = None
    ) -> list[OptedOutImage]:
        if not ids and registrant is None:
            return []
        doomed = self._chosen(within, ids, registrant)
        self.images = [i for i in self.images if i not in doomed]
        return doomed

    async def reassign(self, platform: str, platform_user_id: str, anonymous_id: str) -> int:
        mine = [
            n
            for n, i in enumerate(self.images)
            if (i.platform, i.platform_user_id) == (platform, platform_user_id)
        ]
        for n in mine:
            self.images[n] = replace(self.images[n], platform_user_id=anonymous_id)
        return len(mine)


class InMemoryUsageLog(MemoryStore):
    def __init__(self, owner: TablesOwner | None = None) -> None:
        super().__init__(owner)
        self._salt = secrets.token_hex(8)

    @property
    def events(self) -> list[UsageEvent]:
        return self._t.usage_events

    @events.setter
    def events(self, events: list[UsageEvent]) -> None:
        self._t.usage_events = events

    def _pseudonym(self, user_key: str) -> str:
        return "erased:" + hashlib.sha256(f"{self._salt}:{user_key}".encode()).hexdigest()[:32]

    def _is(self, who: str, user_key: str) -> bool:
        return who in (user_key, self._pseudonym(user_key))

    async def record(
        self, kind: str, user_key: str, scope: str | None, amount: int, at: datetime
    ) -> None:
        if at.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC)")
        self.events.append((kind, user_key, scope, amount, at.astimezone(UTC)))

    async def total(
        self, kind: str, since: datetime, *, user_key: str | None = None, scope: str | None = None
    ) -> int:
        if (user_key is None) == (scope is None):
            raise ValueError("give exactly one of user_key and scope")
        return sum(
            amount
            for k, who, where, amount, at in self.events
            if k == kind
            and at >= since
            and (self._is(who, user_key) if user_key is not None else where == scope)
        )

    async def request_times(self, user_key: str, since: datetime) -> list[datetime]:
        return sorted(
            at for _k, who, _s, _a, at in self.events if self._is(who, user_key) and at >= since
        )

    async def forget(self, user_key: str, keep_since: datetime) -> int:
        forgotten = sum(1 for e in self.events if e[1] == user_key)
        self.events = [
            (kind, self._pseudonym(who) if who == user_key else who, scope, amount, at)
            for kind, who, scope, amount, at in self.events
            if not ((who == user_key or who.startswith("erased:")) and at < keep_since)
        ]
        return forgotten


class InMemoryPendingQueueCleanups(MemoryStore):
    async def add(self, cleanup: QueueCleanup, recorded_at: datetime) -> None:
        async with self.transaction():
            self._t.cleanup_seq += 1
            self._t.queue_cleanups[self._t.cleanup_seq] = cleanup

    async def pending(self) -> list[tuple[int, QueueCleanup]]:
        async with self._reading():
            return sorted(self._t.queue_cleanups.items())

    async def done(self, cleanup_ids: Sequence[int]) -> None:
        async with self.transaction():
            for cleanup_id in cleanup_ids:
                self._t.queue_cleanups.pop(cleanup_id, None)
