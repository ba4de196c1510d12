"""A full disk, recognised wherever the OS or SQLite reports it.

The storage adapters raise the core's `StorageFull` for these, so that every
front end answers "the bot's storage is full; nothing was saved" and logs one
line, instead of showing a traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from stylebot.bot.core.errors import StorageFull

# No space, over quota, or a file past the size limit (RLIMIT_FSIZE): all "full".
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_storage_full(exc: BaseException) -> bool:
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or (
            "database or disk is full" in str(exc)
        )
    return False


@contextmanager
def storage_full_as_error(what: str) -> Iterator[None]:
    """Raise `StorageFull` (naming `what`) for a full-disk error inside the block."""
    try:
        yield
    except StorageFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if is_storage_full(exc):
            raise StorageFull(what, exc) from exc
        raise
