"""`FreshBlobCopies`: a small blob a worker has just stored in an object store is also
left in Redis for a minute, and the front end takes it from there (issue 19).

Why: with the S3 store, the front end's GET of each result's PNG was on the way of
every generation (3-4 ms on a SeaweedFS on the same host, more from a cloud store),
while Redis is the connection the result's event has just come on. The object store
stays the record: the worker writes the copy while its PUT is under way (Redis is
done first), and the key reaches no one before both are in place; a failed PUT takes
its copy away again, so a copy never outlives a blob that was not stored. A copy is
read once (taken: read and deleted in one transaction) and checked against its key as
every read is; with
no copy (too big, expired, read already, Redis refused it) or a copy that does not
match its key, the read goes to the store, whose answers for a missing or damaged
blob are unchanged. Deleting a blob deletes its copy too (erasure).

Copies are a shortcut, never needed: Redis refusing or losing one only costs the
store's read. Not used with a directory store, which the front end reads as fast as
Redis (`with_fresh_copies`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stylebot.queue.keys import fresh_blob_key
from stylebot.queue.outage import OUTAGE_ERRORS
from stylebot.storage.blob_storage import BlobStorage
from stylebot.storage.blobs import BlobScan, LocalBlobStore, check_blob_key

log = logging.getLogger(__name__)

# A 1024x1024 PNG is 1-2 MiB; most results (and every preview) are smaller. Bigger
# blobs (weights, checkpoints) are not read by the front end right away.
COPY_MAX_BYTES = 1024 * 1024
# The front end takes a copy within milliseconds while it runs; one that is down
# reads the store later. Bounds Redis's memory to a minute of results.
COPY_KEPT_S = 60
_REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, *OUTAGE_ERRORS)


class FreshBlobCopies:
    """The `BlobStorage` port over `store`; `put` also leaves a copy of a small blob in
    Redis when `leaves_copies` (workers), and `get` takes a copy if there is one."""

    def __init__(self, store: BlobStorage, redis: Redis, *, leaves_copies: bool) -> None:
        self.store = store
        self.redis = redis
        self.leaves_copies = leaves_copies
        self._said_refused = False

    @property
    def location(self) -> str:
        return self.store.location

    async def put(self, data: bytes) -> str:
        if not self.leaves_copies or len(data) > COPY_MAX_BYTES:
            return await self.store.put(data)
        # The copy is written while the store's PUT is under way (Redis is done long
        # before it): the key goes to no one until `put` returns, by then both are in
        # place; a failed PUT takes its copy away again.
        key = hashlib.sha256(data).hexdigest()
        copy = asyncio.ensure_future(self._leave_copy(key, data))
        try:
            stored = await self.store.put(data)
        except BaseException:
            if await copy:
                await self._drop_copy(key)
            raise
        await copy
        return stored

    async def _leave_copy(self, key: str, data: bytes) -> bool:
        try:
            await self.redis.set(fresh_blob_key(key), data, ex=COPY_KEPT_S)
        except _REDIS_ERRORS as exc:
            self._refused(exc)
            return False
        return True

    async def _drop_copy(self, key: str) -> None:
        try:
            await self.redis.delete(fresh_blob_key(key))
        except _REDIS_ERRORS as exc:
            self._refused(exc)

    async def get(self, key: str) -> bytes:
        copy = await self._take(check_blob_key(key))
        if copy is not None and hashlib.sha256(copy).hexdigest() == key:
            return copy
        return await self.store.get(key)

    async def exists(self, key: str) -> bool:
        return await self.store.exists(key)

    async def delete(self, key: str) -> None:
        # A copy is kept a minute at most; the store's, the lasting one, goes now.
        await self._drop_copy(check_blob_key(key))
        await self.store.delete(key)

    async def put_file(self, path: Path) -> str:
        return await self.store.put_file(path)

    async def get_to_file(self, key: str, path: Path) -> None:
        await self.store.get_to_file(key, path)

    def stored_keys(self) -> Iterator[str]:
        return self.store.stored_keys()

    def scan(self) -> BlobScan:
        return self.store.scan()

    def check_writable(self) -> None:
        self.store.check_writable()

    async def _take(self, key: str) -> bytes | None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(fresh_blob_key(key))
                pipe.delete(fresh_blob_key(key))
                copy, _deleted = await pipe.execute()
        except _REDIS_ERRORS as exc:
            self._refused(exc)
            return None
        return copy if isinstance(copy, bytes) else None

    def _refused(self, exc: BaseException) -> None:
        """Said once per process: a Redis whose ACL lacks the copies' keys refuses
        every copy, and each read then goes to the store (slower, still right)."""
        if not self._said_refused:
            self._said_refused = True
            log.warning(
                "Redis refused a fresh blob copy (%s: %s); blobs are read from %s only",
                type(exc).__name__,
                exc,
                self.store.location,
            )


def with_fresh_copies(store: BlobStorage, redis: Redis, *, leaves_copies: bool) -> BlobStorage:
    """`store` with fresh copies in Redis, unless it is a local directory."""
    if isinstance(store, LocalBlobStore):
        return store
    return FreshBlobCopies(store, redis, leaves_copies=leaves_copies)
