"""The engine's file copies of LoRA and embedding blobs are checked on use, like the blobs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.support.damage import flip_byte

from stylebot.engine.worker_cache import BlobCache


def test_a_damaged_cached_copy_is_rewritten_from_the_verified_bytes(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    data = os.urandom(200_000)
    key = hashlib.sha256(data).hexdigest()
    path = cache.store("loras", key, data)
    assert path.read_bytes() == data
    flip_byte(path)
    assert cache.store("loras", key, data).read_bytes() == data


def test_an_intact_cached_copy_is_not_written_again(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    data = b"weights" * 1000
    key = hashlib.sha256(data).hexdigest()
    path = cache.store("embeddings", key, data)
    before = os.stat(path)
    cache.store("embeddings", key, data)
    after = os.stat(path)
    assert after.st_ino == before.st_ino  # not replaced by a new file
    assert path.read_bytes() == data
