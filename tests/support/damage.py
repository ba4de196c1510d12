"""Damaging stored files for real, the way a failing disk or a bad copy does."""

from __future__ import annotations

from pathlib import Path


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Invert every bit of one byte of `path` in place (the middle one by default)."""
    data = bytearray(path.read_bytes())
    assert data, f"{path} is empty: nothing to damage"
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
