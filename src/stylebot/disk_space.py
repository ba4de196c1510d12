"""Free space where the data directory lives (or will: before it is made, the disk
it will be made on), for the doctor, the start-up warning and the metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

MIB = 1024**2
GIB = 1024**3


def existing_ancestor(path: Path) -> Path:
    """`path` itself if it exists, else its nearest ancestor that does."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def free_bytes(data_dir: Path) -> int:
    return shutil.disk_usage(existing_ancestor(data_dir)).free


def free_text(free: int) -> str:
    """`12.3 GiB` or, below a GiB, `345 MiB`."""
    return f"{free / GIB:.1f} GiB" if free >= GIB else f"{free // MIB} MiB"
