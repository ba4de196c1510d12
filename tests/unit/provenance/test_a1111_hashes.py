"""The hashes other tools give model files, against their rules written out in
tests/support/a1111.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import save
from tests.support import a1111

from stylebot.provenance.a1111_hashes import (
    addnet_hash,
    addnet_legacy_hash,
    checkpoint_shorthash,
)


def _safetensors(metadata: dict[str, str]) -> bytes:
    # Over 1 MiB, so the legacy hash's window holds tensor data.
    return save({"w": torch.arange(600_000, dtype=torch.float32)}, metadata=metadata)


def test_the_lora_hash_ignores_the_metadata_as_a1111s_does() -> None:
    plain = _safetensors({"ss_output_name": "ink"})
    annotated = _safetensors({"ss_output_name": "ink", "modelspec.title": "a long title " * 9})
    assert addnet_hash(plain) == addnet_hash(annotated) == a1111.addnet_hash(annotated)
    assert addnet_hash(plain) != hashlib.sha256(plain).hexdigest()


def test_the_legacy_hash_is_the_window_at_one_mebibyte() -> None:
    data = _safetensors({"ss_output_name": "ink"})
    window = data[0x100000 : 0x100000 + 0x10000]
    assert addnet_legacy_hash(data) == hashlib.sha256(window).hexdigest()[:8]


def test_the_checkpoint_hash_is_the_whole_files_and_is_cached(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    cache = tmp_path / "cache"
    assert checkpoint_shorthash(checkpoint, cache) == a1111.checkpoint_shorthash(checkpoint)
    assert list(cache.iterdir()) != []
    # Rewritten in place: a new size/mtime, so hashed again, not read from the cache.
    checkpoint.write_bytes(os.urandom(1024))
    assert checkpoint_shorthash(checkpoint, cache) == a1111.checkpoint_shorthash(checkpoint)
