"""The copies of blobs a worker keeps on its own disk: LoRA weights and embeddings.

diffusers loads weights from files, so a worker writes a style's blob to its cache
dir, named by the blob key (the SHA-256 of its bytes), and reuses it. Two limits:

* size: least recently used files go once the cache holds more than `max_bytes`
  (a file's mtime is its last use). Files used in the last `IN_USE_S` stay whatever
  the size, since a job may be about to load them.
* revocation: a deleted style's weights must leave every worker (`revoke`), which the
  worker does on a revocation record in Redis (`stylebot.queue.cache_revocation`);
  files unused for longer than that record is kept go at start (`drop_unused_for`).
  A revoked key is refused from then on: a job that read the weights before the
  deletion cannot store them again after the copy was dropped.

Plain files, no model: the worker's revocation watch and tests use it on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
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

    def path(self, kind: CacheKind, key: str) -> Path:
        return self.root / kind / f"{key}{SUFFIX}"

    def store(self, kind: CacheKind, key: str, data: bytes) -> Path:
        """The blob's file, written unless an intact copy is there; marked as just used.

        The copy is checked on every store, like the blob it came from: a damaged one is
        rewritten from `data` (already verified against `key`), never loaded."""
        path = self.path(kind, key)
        with self._lock:
            if key in self._revoked:
                raise RevokedBlobError(f"blob {key} was revoked: not cached")
            if path.exists() and sha256_of_file(path) == hashlib.sha256(data).hexdigest():
                _touch(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_bytes(data)
                partial.replace(path)
            self._evict_over_size()
        return path

    def use(self, kind: CacheKind, key: str) -> Path | None:
        """The blob's file if cached, marked as just used; else None."""
        path = self.path(kind, key)
        with self._lock:
            if not path.exists():
                return None
            _touch(path)
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
                        self.path(kind, key).unlink()
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
                        path.unlink()
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
            if used >= recent:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                total -= size
                log.info("worker cache over %d bytes: dropped %s", self.max_bytes, path.name)

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


def _touch(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)
