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


class QueueUnavailable(Exception):
    """The job queue cannot be reached (its Redis is down or restarting): the request
    was not queued, nor a job cancelled. Raised by the JobQueue adapter."""


#: What a user is told when the queue cannot take their request.
QUEUE_UNAVAILABLE_TEXT = (
    "The queue is unavailable right now, so your request was not taken. "
    "Please try again in a minute."
)
