"""Errors the ports raise that the core handles by name."""

from __future__ import annotations


class RepositoryError(Exception):
    """Base of the errors repositories raise on purpose."""


class DuplicateRecord(RepositoryError):
    """A record with that identity (job id, output id, ...) already exists."""


class DuplicateStyleName(DuplicateRecord):
    """The owner already has a style with that name."""

    def __init__(self, owner_id: int, name: str) -> None:
        super().__init__(f"user {owner_id} already has a style named {name!r}")
        self.owner_id = owner_id
        self.name = name


class RecordNotFound(RepositoryError, LookupError):
    """A write referred to a record that does not exist (or is not usable)."""


class DamagedBlob(Exception):
    """A stored blob's content no longer matches its SHA-256 name (a flipped bit, a
    truncated copy, a file edited by hand). Retrying cannot fix it: only storing the
    right bytes again (which repairs it) or restoring the file from a backup can."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key} is damaged: its content does not match its SHA-256 name")
        self.key = key


# What a user is told when a write failed for want of space (see StorageFull).
STORAGE_FULL_MESSAGE = "the bot's storage is full; nothing was saved"


class StorageFull(RepositoryError):
    """A write failed because the disk (or quota) is full; nothing of it was kept.

    Raised by the storage adapters (blobs, database) for ENOSPC, EDQUOT, EFBIG and
    SQLite's "database or disk is full"; the core answers the user with
    STORAGE_FULL_MESSAGE and the operator gets one log line, not a traceback.
    """

    # Read by the worker's user-facing error text (queue.job_lifecycle.user_error).
    user_message = STORAGE_FULL_MESSAGE

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what}: no space left ({cause})")
        self.what = what


class QueueUnavailable(Exception):
    """The job queue cannot be reached (its Redis is down or restarting): the request
    was not queued, nor a job cancelled. Raised by the JobQueue adapter."""


#: What a user is told when the queue cannot take their request.
QUEUE_UNAVAILABLE_TEXT = (
    "The queue is unavailable right now, so your request was not taken. "
    "Please try again in a minute."
)


class CommandSyntaxError(ValueError):
    """A typed line does not fit its command; the message says how it should look."""
