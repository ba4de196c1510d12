"""The engine's file copies of LoRA and embedding blobs are checked on use, like the blobs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.damage import flip_byte

from stylebot.engine.runtime import cached_file


def test_a_damaged_cached_copy_is_rewritten_from_the_verified_bytes(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    path = cached_file(tmp_path / "loras" / "weights.safetensors", data)
    assert path.read_bytes() == data
    flip_byte(path)
    assert cached_file(path, data).read_bytes() == data


def test_an_intact_cached_copy_is_not_written_again(tmp_path: Path) -> None:
    data = b"weights" * 1000
    path = cached_file(tmp_path / "weights.safetensors", data)
    before = os.stat(path)
    cached_file(path, data)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
