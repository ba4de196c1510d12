"""Storage: SQLite records (aiosqlite) and the content-addressed blob store.

The front end owns the database; GPU workers only ever see blob keys.
"""

from stylebot.storage.blobs import LocalBlobStore, check_blob_key
from stylebot.storage.database import MigrationError, StorageError, open_database
from stylebot.storage.repository import (
    DuplicateRecord,
    DuplicateStyleName,
    RecordNotFound,
    SqliteRepository,
)

# The record errors are the core's (it handles them by name); storage raises them.

__all__ = [
    "DuplicateRecord",
    "DuplicateStyleName",
    "LocalBlobStore",
    "MigrationError",
    "RecordNotFound",
    "SqliteRepository",
    "StorageError",
    "check_blob_key",
    "open_database",
]
