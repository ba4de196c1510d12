"""The hashes AUTOMATIC1111, Civitai and kohya's sd-scripts give model files.

An image's ``parameters`` name the base checkpoint and the LoRA by these hashes, so other
tools link the image to the files: a hash of anything else (say, the trainer's internal
file) links to nothing. The rules, from the tools' sources:

* LoRA (safetensors): SHA-256 of the file after its header (8-byte length + JSON), so
  that editing the metadata keeps the hash. sd-scripts writes it into the file as
  ``sshs_model_hash`` (``train_util.addnet_hash_safetensors``); A1111 takes that key, or
  computes the same (``hashes.sha256(..., use_addnet_hash=True)``), and writes its first
  12 hex digits in ``Lora hashes``.
* The legacy LoRA hash (``sshs_legacy_hash``, ``train_util.addnet_hash_legacy``): SHA-256
  of the 64 KiB at offset 1 MiB, first 8 hex digits, over the file as saved with only
  its ``ss_*`` metadata (``precalculate_safetensors_hashes``).
* Checkpoint: SHA-256 of the whole file; ``Model hash`` is its first 10 hex digits
  (``sd_models.CheckpointInfo.calculate_shorthash``). A diffusers folder or a hub id has
  no such file, so no ``Model hash``. sd-scripts records the base checkpoint of a LoRA
  as ``ss_new_sd_model_hash`` (the full SHA-256) and ``ss_sd_model_hash`` (the old
  A1111 hash: the legacy rule above, over the checkpoint file).

Plain hashlib: importing this does not import torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LORA_SHORTHASH_LEN = 12
MODEL_SHORTHASH_LEN = 10
_LEGACY_OFFSET = 0x100000
_LEGACY_LENGTH = 0x10000
_CHUNK = 1 << 20
_CACHE_FILE = "checkpoint-hashes.json"


def addnet_hash(safetensors_file: bytes) -> str:
    """SHA-256 (hex) of a safetensors file's tensor data: its header excluded."""
    if len(safetensors_file) < 8:
        raise ValueError("not a safetensors file: shorter than its header length")
    header_length = int.from_bytes(safetensors_file[:8], "little")
    return hashlib.sha256(safetensors_file[8 + header_length :]).hexdigest()


def addnet_legacy_hash(safetensors_file: bytes) -> str:
    """The legacy additional-networks hash: 8 hex digits of a slice at 1 MiB."""
    window = safetensors_file[_LEGACY_OFFSET : _LEGACY_OFFSET + _LEGACY_LENGTH]
    return hashlib.sha256(window).hexdigest()[:8]


def checkpoint_shorthash(path: Path, cache_dir: Path | None = None) -> str:
    """``Model hash`` of a single-file checkpoint: 10 hex digits of its SHA-256."""
    return checkpoint_sha256(path, cache_dir)[:MODEL_SHORTHASH_LEN]


def checkpoint_legacy_hash(path: Path) -> str:
    """A1111's old model hash (sd-scripts' ``ss_sd_model_hash``) of a checkpoint file."""
    with path.open("rb") as handle:
        handle.seek(_LEGACY_OFFSET)
        return hashlib.sha256(handle.read(_LEGACY_LENGTH)).hexdigest()[:8]


def checkpoint_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 (hex) of a single-file checkpoint.

    Hashing a 7 GB checkpoint takes a while, so with ``cache_dir`` the hash is kept per
    (path, size, modification time) in a JSON file there, as A1111 keeps its own.
    """
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_path = cache_dir / _CACHE_FILE if cache_dir is not None else None
    cache = _read_cache(cache_path)
    digest = cache.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
        digest = sha.hexdigest()
        if cache_path is not None:
            cache[key] = digest
            _write_cache(cache_path, cache)
    return digest


def _read_cache(path: Path | None) -> dict[str, str]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache only costs hashing again
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
    partial.replace(path)
