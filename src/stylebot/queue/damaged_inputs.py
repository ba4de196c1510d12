"""A job whose stored input is damaged fails for good, in words the user can act on.

The blob store refuses content that no longer matches its SHA-256 name
(`DamagedBlob`). Retrying the job would read the same damaged file, so the worker
turns it into a `DamagedInput`: its failure event is marked not retryable (no
"you can try again"), and the operator's log gets one line naming the style (by
id, never by its name), the blob and the directory to restore, instead of a
traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from stylebot.bot.core.errors import DamagedBlob
from stylebot.engine.worker_cache import BlobCache, CachedBlob, CacheKind
from stylebot.storage.blob_storage import BlobStorage


class DamagedInput(Exception):
    """A job's input blob is damaged: `user_message` for the chat, `str()` for the log."""

    def __init__(self, operator_message: str, user_message: str) -> None:
        super().__init__(operator_message)
        self.user_message = user_message


async def fetch_style_weights(
    blobs: BlobStorage,
    cache: BlobCache,
    kind: CacheKind,
    key: str,
    style_id: int | None,
    style_name: str | None,
) -> CachedBlob:
    """A style's LoRA or embedding on the worker's disk, checked against its name.

    The operator's message names the style by id and the blob by key: a style's name is
    its owner's text, and logs are kept beyond the reach of /style delete and /forgetme.
    """
    try:
        return await _fetched(blobs, cache, kind, key)
    except DamagedBlob as exc:
        raise DamagedInput(
            f"style {style_id}'s weights are damaged (blob {exc.key}): retrain it or "
            f"restore {blobs.location} from a backup",
            f"style {style_name or 'this'}'s weights are damaged: retrain it, or ask the "
            "operator to restore the bot's stored files from a backup",
        ) from exc


async def read_training_images(blobs: BlobStorage, keys: Sequence[str]) -> list[bytes]:
    """The reference images of a training job, each checked against its name."""
    images = []
    for key in keys:
        try:
            images.append(await blobs.get(key))
        except DamagedBlob as exc:
            raise DamagedInput(
                f"a training image is damaged (blob {exc.key}): upload the images again "
                f"or restore {blobs.location} from a backup",
                "one of the reference images is damaged in storage: upload the images "
                "again (that repairs it) and train again",
            ) from exc
    return images


async def fetch_source_picture(blobs: BlobStorage, cache: BlobCache, key: str) -> CachedBlob:
    """The picture a restyle starts from (or a repaint's mask) on the worker's disk,
    checked against its name."""
    try:
        return await _fetched(blobs, cache, "sources", key)
    except DamagedBlob as exc:
        raise DamagedInput(
            f"a restyle's picture is damaged (blob {exc.key}): restore {blobs.location} "
            "from a backup",
            "the picture to restyle is damaged in storage: send it again",
        ) from exc


async def _fetched(blobs: BlobStorage, cache: BlobCache, kind: CacheKind, key: str) -> CachedBlob:
    """The worker's intact copy when it has one, else a streamed download of the blob:
    a style used again costs a hash of the local file, not a trip to the store."""
    cached = await asyncio.to_thread(cache.intact, kind, key)
    if cached is not None:
        return cached
    download = cache.download_path(kind, key)
    try:
        await blobs.get_to_file(key, download)
        return cache.adopt(kind, key, download)
    finally:
        download.unlink(missing_ok=True)
