"""`LocalBlobStore`: content-addressed bytes in a local directory.

A blob's key is the SHA-256 of its content, so a key names exactly one
content forever: writing it twice is a no-op, readers never see it change,
and a directory that several hosts mount can be shared without coordination.
Every read checks the content against its name, so a damaged file (a flipped
bit on disk, a truncated copy) is an error naming the key (`DamagedBlob`),
never silently used; a later `put` of the right bytes repairs it.
Files live at `root/ab/cd/<key>` so no directory grows past a few thousand
entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stylebot.bot.core.errors import DamagedBlob
from stylebot.storage.full import storage_full_as_error

_KEY = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".tmp-"
# Files are hashed in chunks of this size: a big LoRA is never held twice.
_HASH_CHUNK = 1024 * 1024


def check_blob_key(key: str) -> str:
    """Return `key` if it is 64 lowercase hex digits, else raise `ValueError`.

    Keys come from job payloads and database rows; validating them here is
    what makes `../../etc/passwd` or an absolute path impossible to turn into
    a file path outside the store.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError(f"not a blob key (64 lowercase hex digits): {key!r}")
    return key


class LocalBlobStore:
    """The `BlobStore` port on a directory. Safe for concurrent writers.

    A write goes to a temporary file in the blob's own directory, is fsynced
    and then renamed over the final name, so a reader (or a crash) can only
    ever see no file or the whole file. Temporary names start with a dot and
    are never 64 hex digits, so they cannot be mistaken for blobs.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """Where the blob with `key` lives (or would live), for local readers."""
        check_blob_key(key)
        return self.root / key[:2] / key[2:4] / key

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put_sync, data)

    async def get(self, key: str) -> bytes:
        """The content of `key`; `KeyError` if there is no such blob, `DamagedBlob` if
        its content no longer matches the key."""
        return await asyncio.to_thread(self.get_sync, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is fine (deletes are idempotent)."""
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)

    async def put_file(self, path: Path) -> str:
        return await asyncio.to_thread(self.put_file_sync, path)

    async def get_to_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self.get_to_file_sync, key, path)

    def put_sync(self, data: bytes) -> str:
        """Blocking `put`, for code already in a worker thread (e.g. the trainer)."""
        # BytesIO of bytes shares their buffer: no second copy.
        return self._store(hashlib.sha256(data).hexdigest(), io.BytesIO(data), None)

    def get_sync(self, key: str) -> bytes:
        """Blocking `get`, for code already in a worker thread. `DamagedBlob` when the
        content does not match the key."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        # Hashing the bytes already read takes no second copy of them.
        if hashlib.sha256(data).hexdigest() != key:
            raise DamagedBlob(key)
        return data

    def put_file_sync(self, source: Path) -> str:
        """Blocking `put_file`: the file is hashed, then copied, in chunks."""
        key = sha256_of_file(source)
        with open(source, "rb") as reading:
            return self._store(key, reading, source)

    def _store(self, key: str, reading: BinaryIO, source: Path | None) -> str:
        """Write what `reading` gives as blob `key`: to a temporary file, synced, then
        renamed into place. A blob already there intact is kept; a missing or damaged
        one is (re)written, which repairs the damage. A full disk is StorageFull:
        nothing was stored (the temporary file is gone). From a `source` file, the
        copy is hashed again, as the file may change while it is copied."""
        target = self.path(key)
        if target.is_file() and sha256_of_file(target) == key:
            return key
        with storage_full_as_error("the blob store"):
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
            try:
                with open(temp, "xb") as writing:
                    digest = hashlib.sha256()
                    while chunk := reading.read(_HASH_CHUNK):
                        if source is not None:
                            digest.update(chunk)
                        writing.write(chunk)
                    writing.flush()
                    os.fsync(writing.fileno())
                if source is not None and digest.hexdigest() != key:
                    raise OSError(f"{source} changed while it was stored")
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
            _fsync_directory(target.parent)
        return key

    def get_to_file_sync(self, key: str, target: Path) -> None:
        """Blocking `get_to_file`: copied in chunks, checked, then renamed into place."""
        temp = target.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            try:
                reading = open(self.path(key), "rb")  # noqa: SIM115 - closed just below
            except FileNotFoundError:
                raise KeyError(key) from None
            with reading, open(temp, "xb") as writing:
                digest = hashlib.sha256()
                while chunk := reading.read(_HASH_CHUNK):
                    digest.update(chunk)
                    writing.write(chunk)
            if digest.hexdigest() != key:
                raise DamagedBlob(key)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def check_writable(self) -> None:
        probe = f"stylebot doctor probe {secrets.token_hex(16)}".encode()
        key = self.put_sync(probe)
        try:
            if self.get_sync(key) != probe:
                raise OSError(f"{self.root} returned other bytes than were written")
        finally:
            self.path(key).unlink(missing_ok=True)

    def stored_keys(self) -> Iterator[str]:
        """Every stored key (temporary files are skipped), for a scan of the store."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("??/??/*")):
            if _KEY.fullmatch(path.name) and path.is_file():
                yield path.name

    def scan(self) -> BlobScan:
        """Hash every blob against its name (streamed: any size fits; reads everything)."""
        scanned = 0
        damaged = []
        for key in self.stored_keys():
            scanned += 1
            # A blob deleted between listing and hashing is not damage.
            with contextlib.suppress(FileNotFoundError):
                if sha256_of_file(self.path(key)) != key:
                    damaged.append(key)
        return BlobScan(scanned, tuple(damaged))


@dataclass(frozen=True)
class BlobScan:
    """What `LocalBlobStore.scan` found: how many blobs, and the keys of damaged ones."""

    scanned: int
    damaged: tuple[str, ...]


def sha256_of_file(path: Path) -> str:
    """The SHA-256 of a file's content, read in chunks so a big file is never held whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on Windows."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
