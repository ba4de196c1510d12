"""The in-memory records' tables, their transactions, and what every fake store shares.

`InMemoryUnitOfWork` (tests/fakes/memory.py) owns one `_Tables`; each store reads it
through the unit of work, so a rollback (which swaps the tables for a snapshot) undoes
every store's writes together, as one SQLite transaction does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.model import Consent, Job, Output, Style, Upload, User
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.queue.payloads import StyleMetrics, ValidationPoint

_INT64 = (-(2**63), 2**63 - 1)


def _utc(moment: datetime) -> datetime:
    """What a time looks like after a trip through the database: UTC, microseconds."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware datetime (UTC)")
    return moment.astimezone(UTC)


def _json_copy(value: Any) -> Any:
    """Round-trip through JSON, as the database's JSON columns do."""
    return json.loads(json.dumps(value, sort_keys=True))


def _check_seed(seed: int) -> None:
    if not _INT64[0] <= seed <= _INT64[1]:
        raise ValueError(f"seed {seed} does not fit a signed 64-bit integer")


# (kind, user key, scope, amount, at)
UsageEvent = tuple[str, str, str | None, int, datetime]


@dataclass
class _Tables:
    users: dict[int, User] = field(default_factory=dict)
    uploads: dict[int, Upload] = field(default_factory=dict)
    consents: dict[int, Consent] = field(default_factory=dict)
    styles: dict[int, Style] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)  # insertion order = rowid order
    outputs: dict[str, Output] = field(default_factory=dict)
    # style id -> blob key of its exportable LoRA (the styles.export_key column)
    style_exports: dict[int, str] = field(default_factory=dict)
    style_validation: dict[int, tuple[ValidationPoint, ...]] = field(default_factory=dict)
    style_metrics: dict[int, StyleMetrics] = field(default_factory=dict)
    upload_seq: int = 0  # uploads never reuse an id, like AUTOINCREMENT
    # The consent ledger's, opt-out registry's, usage log's and pending queue
    # clean-ups' rows (tests/fakes/memory_safety.py).
    ledger: list[Any] = field(default_factory=list)
    optout_images: list[OptedOutImage] = field(default_factory=list)
    usage_events: list[UsageEvent] = field(default_factory=list)
    queue_cleanups: dict[int, QueueCleanup] = field(default_factory=dict)
    cleanup_seq: int = 0


@dataclass
class _Transaction:
    active: bool = True
    snapshots: list[_Tables] = field(default_factory=list)


def _style_copy(style: Style) -> Style:
    # Style is frozen but its train_settings dict is not: never hand out ours.
    return replace(style, train_settings=_json_copy(style.train_settings))


class TablesOwner(Protocol):
    """Whoever holds the tables now (a rollback replaces them) and their transactions."""

    _t: _Tables
    _now: Callable[[], datetime]

    def transaction(self) -> Any: ...

    def _reading(self) -> Any: ...


class StandaloneTables:
    """Tables of a store built alone (no unit of work): one lock, no rollback."""

    def __init__(self) -> None:
        self._t = _Tables()
        self._now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


class MemoryStore:
    """A fake store: its rows are the owner's tables as they are now."""

    def __init__(self, owner: TablesOwner | None = None) -> None:
        self._owner: TablesOwner = owner if owner is not None else StandaloneTables()

    @property
    def _t(self) -> _Tables:
        return self._owner._t

    def _now(self) -> datetime:
        return self._owner._now()

    def transaction(self) -> Any:
        return self._owner.transaction()

    def _reading(self) -> Any:
        return self._owner._reading()

    def _need_user(self, user_id: int, message: str) -> None:
        if user_id not in self._t.users:
            raise RecordNotFound(message)

    def _need_style(self, style_id: int) -> Style:
        style = self._t.styles.get(style_id)
        if style is None:
            raise RecordNotFound(f"style {style_id} does not exist")
        return style

    def _pending(self, user_id: int) -> list[Upload]:
        return sorted(
            (u for u in self._t.uploads.values() if u.user_id == user_id and u.style_id is None),
            key=lambda u: u.id,
        )
