"""The copies of blobs a worker keeps on its own disk: LoRA weights, embeddings and
the pictures restyles start from.

diffusers loads weights from files, so a worker downloads a style's blob into its
cache dir (streamed, checked against its key), named by the blob key (the SHA-256 of
its bytes), and generates from that copy while it stays intact: a style used again
costs a hash of the local file, not a download (`stylebot.queue.damaged_inputs`).
Two limits:

* size: least recently used files go once the cache holds more than `max_bytes`
  (a file's mtime is its last use). Files used in the last `IN_USE_S`, and those a
  job has fetched and not yet used (`pinned`), stay whatever the size.
* revocation: a deleted style's weights must leave every worker (`revoke`), which the
  worker does on a revocation record in Redis (`stylebot.queue.cache_revocation`);
  files unused for longer than that record is kept go at start (`drop_unused_for`).
  A revoked key is refused from then on: a job that read the weights before the
  deletion cannot cache them again after the copy was dropped.

Plain files, no model: the worker's revocation watch and tests use it on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stylebot.storage.blobs import sha256_of_file

log = logging.getLogger(__name__)

# "sources": the pictures restyles start from, fetched by the worker before the call.
CacheKind = Literal["loras", "embeddings", "sources"]
KINDS: tuple[CacheKind, ...] = ("loras", "embeddings", "sources")
# Hundreds of SD 1.5 style LoRAs, or a few dozen SDXL ones.
DEFAULT_CACHE_MAX_BYTES = 2 * 1024**3
# A file stored or used this recently may be loaded any moment: never evicted for size.
IN_USE_S = 60.0
SUFFIX = ".safetensors"


class RevokedBlobError(LookupError):
    """The blob was revoked (its style deleted): this worker keeps no copy of it."""


@dataclass(frozen=True)
class CachedBlob:
    """A blob's intact copy on the worker's disk."""

    key: str  # the SHA-256 of its content
    path: Path


class BlobCache:
    """Blob copies under `root/<kind>/<blob key>.safetensors`. Thread-safe: the device
    thread stores and uses files, the event loop drops revoked ones."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # Blob keys revoked since this process started: never stored again. Bounded by
        # the revocations kept in Redis (a blob key names content nobody has any more).
        self._revoked: set[str] = set()
        # Copies a job has fetched and not yet used: never evicted for size meanwhile
        # (a job may wait on the device longer than IN_USE_S). Counted: jobs share styles.
        self._pinned: Counter[Path] = Counter()
        # Each copy as it was when last hashed or written here (`_identity`): a copy
        # that still looks so is not hashed again.
        self._checked: dict[Path, tuple[int, int, int]] = {}

    def path(self, kind: CacheKind, key: str) -> Path:
        return self.root / kind / f"{key}{SUFFIX}"

    def intact(self, kind: CacheKind, key: str) -> CachedBlob | None:
        """The blob's copy if there is one and it still matches its key, marked as just
        used; a damaged copy is deleted, never loaded. Hashed again only when the file
        changed since this cache last checked or wrote it (an SDXL style is ~200 MB:
        0.15 s of hashing on every generation in it, measured on this machine)."""
        path = self.path(kind, key)
        with self._lock:
            if key in self._revoked:
                return None
            try:
                seen = _identity(path)
            except FileNotFoundError:
                return None
            if self._checked.get(path) != seen and sha256_of_file(path) != key:
                log.warning("worker cache: %s/%s was damaged; fetching it again", kind, key)
                self._checked.pop(path, None)
                path.unlink(missing_ok=True)
                return None
            self._checked[path] = _touched(path)
        return CachedBlob(key, path)

    def download_path(self, kind: CacheKind, key: str) -> Path:
        """A file name of its own beside the cache's files (two jobs may fetch the same
        blob at once), for a download to `adopt`."""
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{key}.{secrets.token_hex(4)}.partial"

    def adopt(self, kind: CacheKind, key: str, download: Path) -> CachedBlob:
        """Take a download already checked against `key` (`BlobStorage.get_to_file`)
        as the blob's copy; refused, and the download deleted, once the key is revoked."""
        path = self.path(kind, key)
        with self._lock:
            if key in self._revoked:
                download.unlink(missing_ok=True)
                raise RevokedBlobError(f"blob {key} was revoked: not cached")
            download.replace(path)
            self._checked[path] = _touched(path)
            self._evict_over_size()
        return CachedBlob(key, path)

    @contextlib.contextmanager
    def pinned(self, blobs: Iterable[CachedBlob]) -> Iterator[None]:
        """Keep these copies from size eviction while a job uses them (revocation still
        removes them: a deleted style's weights go whoever holds them)."""
        paths = [blob.path for blob in blobs]
        with self._lock:
            self._pinned.update(paths)
        try:
            yield
        finally:
            with self._lock:
                self._pinned.subtract(paths)
                self._pinned = +self._pinned  # forget the zero counts

    def use(self, kind: CacheKind, key: str) -> Path | None:
        """The blob's file if cached, marked as just used; else None."""
        path = self.path(kind, key)
        with self._lock:
            try:
                seen = _identity(path)
            except FileNotFoundError:
                return None
            now = _touched(path)
            if self._checked.get(path) == seen:  # still as checked: stays checked
                self._checked[path] = now
        return path

    def revoke(self, keys: Iterable[str]) -> tuple[list[str], int]:
        """Refuse these blobs from now on and delete their copies; returns the keys not
        revoked before, and how many files went."""
        wanted = set(keys)
        with self._lock:
            new = sorted(wanted - self._revoked)
            self._revoked.update(wanted)
        return new, self.drop(wanted)

    def drop(self, keys: Iterable[str]) -> int:
        """Delete the cached copies of these blobs, of every kind; returns how many."""
        dropped = 0
        with self._lock:
            for key in set(keys):
                for kind in KINDS:
                    with contextlib.suppress(FileNotFoundError):
                        self._delete(self.path(kind, key))
                        dropped += 1
        return dropped

    def drop_unused_for(self, seconds: float) -> int:
        """Delete files unused for longer than `seconds` (and half-written ones)."""
        cutoff = time.time() - seconds
        dropped = 0
        with self._lock:
            for path, used, _size in self._files():
                if used < cutoff or path.suffix != SUFFIX:
                    with contextlib.suppress(FileNotFoundError):
                        self._delete(path)
                        dropped += 1
        return dropped

    def total_bytes(self) -> int:
        with self._lock:
            return sum(size for _path, _used, size in self._files())

    def _evict_over_size(self) -> None:
        files = sorted(self._files(), key=lambda file: file[1])
        total = sum(size for _path, _used, size in files)
        recent = time.time() - IN_USE_S
        for path, used, size in files:
            if total <= self.max_bytes:
                return
            if used >= recent or path in self._pinned:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._delete(path)
                total -= size
                log.info("worker cache over %d bytes: dropped %s", self.max_bytes, path.name)

    def _delete(self, path: Path) -> None:
        self._checked.pop(path, None)
        path.unlink()

    def _files(self) -> list[tuple[Path, float, int]]:
        found = []
        for kind in KINDS:
            directory = self.root / kind
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                with contextlib.suppress(FileNotFoundError):
                    stat = entry.stat()
                    found.append((Path(entry.path), stat.st_mtime, stat.st_size))
        return found


def _identity(path: Path) -> tuple[int, int, int]:
    """Inode, size and modification time: any write to the file changes the last."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _touched(path: Path) -> tuple[int, int, int]:
    """Mark the copy as just used (its mtime is its last use) and return its identity."""
    os.utime(path)
    return _identity(path)
