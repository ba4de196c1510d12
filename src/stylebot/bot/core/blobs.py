"""Reading a result's blobs together; deleting the blobs that no record names any more.

Blobs are shared by content: a new upload of the same bytes finds its blob stored
already and only adds its record. Between the two, a deleter that had just found the
blob unused would delete it under the new record. So uploads hold `Deps.blob_lock` from
storing a blob until its record exists, and deleters check again under the same lock
right before they delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from stylebot.bot.core.deps import Deps
from stylebot.bot.core.ports import BlobStore


async def read_together(blobs: BlobStore, keys: Sequence[str]) -> list[bytes]:
    """The contents of `keys`, in order, read at once: a result's images wait for one
    store round trip, not one each (issue 19). Raises the first key's failure, as reading
    them one by one would, once every read is over (none is left running)."""
    contents = await asyncio.gather(*(blobs.get(key) for key in keys), return_exceptions=True)
    for content in contents:
        if isinstance(content, BaseException):
            raise content
    return [content for content in contents if isinstance(content, bytes)]


async def delete_unused_blobs(deps: Deps, keys: Iterable[str]) -> int:
    """Delete those of `keys` that no record names now; returns how many went.

    Call after the transaction that removed the records commits: a failed commit must
    not leave records naming missing blobs."""
    async with deps.blob_lock:
        unused = await deps.uow.unreferenced_blob_keys(sorted(set(keys)))
        for key in sorted(unused):
            await deps.blobs.delete(key)
    return len(unused)
