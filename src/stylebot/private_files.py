"""Only the service's own user reads what stylebot stores.

The data directory holds the database, uploads, LoRA weights, outputs, the
queue's append-only file, logs and signing keys. Each process sets the umask to
0077 first thing (`use_private_umask`), so every file and directory it creates,
and those of the embedded redis-server it starts, is 0600 or 0700 whatever the
shell's umask; the data directory itself is made (or tightened to) 0700.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077


def use_private_umask() -> None:
    """From now on this process (and its children) create files 0600, directories 0700."""
    os.umask(PRIVATE_UMASK)


def ensure_private_directory(path: Path) -> Path:
    """`path` as a directory only its owner can enter: created 0700, or tightened to
    0700 if it is ours and more open (an install from before this rule)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)
        log.warning("%s was readable by other users; it is now 0700", path)
    return path
