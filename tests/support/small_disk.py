"""A small real file system for full-disk and read-only tests: a tmpfs mounted in the
test's directory (needs root, or CAP_SYS_ADMIN, as in the project's test container).

Faults are real: writes fail with ENOSPC once `fill` has taken the last free page,
and a read-only mount refuses every write with EROFS, even to root.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["fill", "mounted_tmpfs"]

_CHUNK = 1024 * 1024


@contextmanager
def mounted_tmpfs(directory: Path, size: str = "30m", *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `directory` for the block; unmounted after."""
    directory.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise RuntimeError(
            "this test mounts a small tmpfs and needs root (CAP_SYS_ADMIN): "
            + mounted.stderr.strip()
        )
    try:
        yield directory
    finally:
        # Lazy: a process the test left behind must not keep the mount alive.
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Write a filler file in `directory` until its file system is full, then give back
    `leave` bytes; returns it (delete it to free the space again)."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (_CHUNK, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return filler
