"""Deleting the blobs that no record names any more.

Blobs are shared by content: a new upload of the same bytes finds its blob stored
already and only adds its record. Between the two, a deleter that had just found the
blob unused would delete it under the new record. So uploads hold `Deps.blob_lock` from
storing a blob until its record exists, and deleters check again under the same lock
right before they delete.
"""

from __future__ import annotations

from collections.abc import Iterable

from stylebot.bot.core.deps import Deps


async def delete_unused_blobs(deps: Deps, keys: Iterable[str]) -> int:
    """Delete those of `keys` that no record names now; returns how many went.

    Call after the transaction that removed the records commits: a failed commit must
    not leave records naming missing blobs."""
    async with deps.blob_lock:
        unused = await deps.uow.unreferenced_blob_keys(sorted(set(keys)))
        for key in sorted(unused):
            await deps.blobs.delete(key)
    return len(unused)
