"""In-memory `UnitOfWork` and `BlobStore` for the core's unit tests.

The unit of work keeps records in dicts (tests/fakes/memory_tables.py) and hands out
the stores of tests/fakes/memory_stores.py and tests/fakes/memory_safety.py on them.
Its transactions behave like the SQLite ones: all or nothing across every store,
nested blocks as savepoints, other coroutines waiting for an open transaction.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

from stylebot.bot.core.errors import DamagedBlob
from stylebot.bot.core.stores import UnitOfWork
from stylebot.storage.blobs import BlobScan
from tests.fakes.memory_safety import (
    InMemoryConsentLedger,
    InMemoryOptOutRegistry,
    InMemoryPendingQueueCleanups,
    InMemoryUsageLog,
)
from tests.fakes.memory_stores import (
    InMemoryConsentStore,
    InMemoryJobStore,
    InMemoryOutputStore,
    InMemoryStyleStore,
    InMemoryUploadStore,
    InMemoryUserStore,
)
from tests.fakes.memory_tables import _Tables, _Transaction

__all__ = ["InMemoryBlobStore", "InMemoryUnitOfWork"]

_KEY = re.compile(r"[0-9a-f]{64}")


class InMemoryUnitOfWork(UnitOfWork):
    """The `UnitOfWork` port in dicts; see the module docstring."""

    # The fakes' own types: tests look at their rows.
    ledger: InMemoryConsentLedger
    optouts: InMemoryOptOutRegistry
    usage: InMemoryUsageLog

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__()
        self._now = now
        self._t = _Tables()
        self._lock = asyncio.Lock()
        self._current: ContextVar[_Transaction | None] = ContextVar(
            f"memory_tx_{id(self)}", default=None
        )
        self.users = InMemoryUserStore(self)
        self.uploads = InMemoryUploadStore(self)
        self.consents = InMemoryConsentStore(self)
        self.styles = InMemoryStyleStore(self)
        self.jobs = InMemoryJobStore(self)
        self.outputs = InMemoryOutputStore(self)
        self.ledger = InMemoryConsentLedger(self)
        self.optouts = InMemoryOptOutRegistry(self)
        self.usage = InMemoryUsageLog(self)
        self.cleanups = InMemoryPendingQueueCleanups(self)

    async def close(self) -> None:
        """Nothing to release; here so tests can treat both units of work alike."""

    def _inside(self) -> _Transaction | None:
        tx = self._current.get()
        return tx if tx is not None and tx.active else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """All or nothing; nested use rolls back only its own part (a savepoint)."""
        tx = self._inside()
        if tx is not None:
            tx.snapshots.append(copy.deepcopy(self._t))
            try:
                yield
            except BaseException:
                self._t = tx.snapshots.pop()
                raise
            tx.snapshots.pop()
            return
        async with self._lock:
            tx = _Transaction(snapshots=[copy.deepcopy(self._t)])
            token = self._current.set(tx)
            try:
                yield
            except BaseException:
                self._t = tx.snapshots[0]
                raise
            finally:
                tx.active = False
                self._current.reset(token)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        if self._inside() is not None:
            yield
            return
        async with self._lock:
            yield

    async def unreferenced_blob_keys(self, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that no upload, style (LoRA) or output uses any more."""
        async with self._reading():
            used = (
                {u.blob_key for u in self._t.uploads.values()}
                | {s.lora_key for s in self._t.styles.values() if s.lora_key}
                | {s.embedding_key for s in self._t.styles.values() if s.embedding_key}
                | set(self._t.style_exports.values())
                | {o.blob_key for o in self._t.outputs.values() if o.blob_key}
                | {o.source_key for o in self._t.outputs.values() if o.source_key}
                | {o.mask_key for o in self._t.outputs.values() if o.mask_key}
            )
            return set(keys) - used

    async def wipe_deleted(self) -> None:
        """Nothing stays in memory once deleted."""


class InMemoryBlobStore:
    """The `BlobStorage` port in a dict, with the same key rules as `LocalBlobStore`,
    checked on read like every store (a test may damage `blobs[key]`)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    @property
    def location(self) -> str:
        return "memory"

    @staticmethod
    def _check(key: str) -> str:
        if not isinstance(key, str) or _KEY.fullmatch(key) is None:
            raise ValueError(f"not a blob key (64 lowercase hex digits): {key!r}")
        return key

    async def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        self.blobs[key] = bytes(data)  # replaced: a put of the right bytes repairs
        return key

    async def get(self, key: str) -> bytes:
        try:
            data = self.blobs[self._check(key)]
        except KeyError:
            raise KeyError(key) from None
        if hashlib.sha256(data).hexdigest() != key:
            raise DamagedBlob(key)
        return data

    async def exists(self, key: str) -> bool:
        return self._check(key) in self.blobs

    async def delete(self, key: str) -> None:
        self.blobs.pop(self._check(key), None)

    async def put_file(self, path: Path) -> str:
        return await self.put(await asyncio.to_thread(path.read_bytes))

    async def get_to_file(self, key: str, path: Path) -> None:
        data = await self.get(key)
        await asyncio.to_thread(path.write_bytes, data)

    def stored_keys(self) -> Iterator[str]:
        return iter(sorted(self.blobs))

    def scan(self) -> BlobScan:
        damaged = [k for k, v in sorted(self.blobs.items()) if hashlib.sha256(v).hexdigest() != k]
        return BlobScan(len(self.blobs), tuple(damaged))

    def check_writable(self) -> None:
        """Memory always takes a write."""

    def keys(self) -> set[str]:
        """The stored keys, for tests to assert what was (not) stored."""
        return set(self.blobs)
