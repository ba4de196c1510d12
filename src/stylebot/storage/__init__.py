"""Storage: SQLite records (aiosqlite) and the content-addressed blob store.

The front end owns the database; GPU workers only ever see blob keys.
"""

from stylebot.bot.core.errors import DuplicateRecord, DuplicateStyleName, RecordNotFound
from stylebot.storage.blobs import LocalBlobStore, check_blob_key
from stylebot.storage.database import MigrationError, StorageError, open_database
from stylebot.storage.unit_of_work import SqliteUnitOfWork

# The record errors are the core's (it handles them by name); storage raises them.

__all__ = [
    "DuplicateRecord",
    "DuplicateStyleName",
    "LocalBlobStore",
    "MigrationError",
    "RecordNotFound",
    "SqliteUnitOfWork",
    "StorageError",
    "check_blob_key",
    "open_database",
]
