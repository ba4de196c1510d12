"""`BlobStorage`: the blob store port the front end, the worker and the doctor use.

The core's `BlobStore` port (stylebot.bot.core.ports) is what the business rules need:
put, get, exists, delete. Outside the core the store does more: it streams big
files in and out without holding them whole (`put_file`, `get_to_file`), lists and
checks every blob (`scan`, for `stylebot doctor --check-blobs`), proves it can be
written (`check_writable`, for `stylebot doctor`), and names itself in messages to the
operator (`location`). Two adapters: `LocalBlobStore` (a directory, the default) and
`S3BlobStore` (any S3-compatible object store), chosen by `STYLEBOT_BLOB_URL`
through `open_blob_store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from stylebot.bot.core.ports import BlobStore
from stylebot.storage.blobs import BlobScan, LocalBlobStore

if TYPE_CHECKING:
    from stylebot.config import Settings


S3_SCHEME = "s3://"


class BlobStoreUnavailable(Exception):
    """The blob store did not answer (after its retries): nothing was read or stored."""


class BlobStorage(BlobStore, Protocol):
    """Content-addressed bytes (key = SHA-256 of the content), checked on every read.

    `get` and `get_to_file` raise `KeyError` for a missing blob and `DamagedBlob` for
    content that no longer matches its key; a `put` of the right bytes repairs it.
    `delete` is idempotent and removes every stored copy of the blob.
    """

    @property
    def location(self) -> str:
        """Where the blobs are, for the operator: a directory or an s3:// URL."""
        ...

    async def put_file(self, path: Path) -> str:
        """Store a file's content, streamed (never read whole); returns its key."""
        ...

    async def get_to_file(self, key: str, path: Path) -> None:
        """Write the blob to `path`, streamed and checked; `path` appears only once
        the whole content matched its key."""
        ...

    def stored_keys(self) -> Iterator[str]:
        """Every stored key (blocking: call off the event loop)."""
        ...

    def scan(self) -> BlobScan:
        """Hash every blob against its name (blocking, reads everything)."""
        ...

    def check_writable(self) -> None:
        """Store, read back and delete a small probe blob; raises when any step fails
        (blocking: for `stylebot doctor`)."""
        ...


def is_s3_url(blob_url: str) -> bool:
    return blob_url.startswith(S3_SCHEME)


def open_blob_store(settings: Settings) -> BlobStorage:
    """The store `settings.blob_url` names: an s3:// URL, else a directory (unset:
    DATA_DIR/blobs). Only the S3 adapter imports boto3."""
    if is_s3_url(settings.blob_url):
        from stylebot.storage.s3_blobs import S3BlobStore

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(
        Path(settings.blob_url).expanduser() if settings.blob_url else settings.blob_dir
    )
