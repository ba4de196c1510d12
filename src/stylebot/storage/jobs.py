"""`SqliteJobStore`: the core's `JobStore` port (table `jobs`), on the shared session."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import datetime

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import Job, JobStatus, NewJob, Requester
from stylebot.storage.session import SqliteStore, from_row, integrity_error, utc_time


class SqliteJobStore(SqliteStore):
    async def add_job(self, new: NewJob) -> Job:
        created = utc_text(new.created_at)
        async with self._session.transaction():
            try:
                await self._session.write(
                    "INSERT INTO jobs (id, kind, user_id, style_id, status, origin,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new.job_id,
                        new.kind,
                        new.user_id,
                        new.style_id,
                        JobStatus.QUEUED.value,
                        json.dumps(dataclasses.asdict(new.origin), sort_keys=True),
                        created,
                        created,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                missing = (
                    f"job {new.job_id!r}: user {new.user_id} or style {new.style_id} does not exist"
                )
                raise integrity_error(exc, missing, f"job {new.job_id!r} already exists") from exc
            row = await self._session.fetch_row("SELECT * FROM jobs WHERE id = ?", (new.job_id,))
        assert row is not None
        return _job(row)

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._session.fetch_row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row is not None else None

    async def update_job(
        self,
        job_id: str,
        status: JobStatus,
        updated_at: datetime,
        step: int | None = None,
        total: int | None = None,
        error: str | None = None,
    ) -> None:
        """Set the status and time; `None` for step, total or error keeps the stored value."""
        status = JobStatus(status)
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE jobs SET status = ?, updated_at = ?, step = COALESCE(?, step),"
                " total = COALESCE(?, total), error = COALESCE(?, error) WHERE id = ?",
                (status.value, utc_text(updated_at), step, total, error, job_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"job {job_id!r} does not exist")

    async def cancel_active_job(self, job_id: str, updated_at: datetime) -> bool:
        async with self._session.transaction():
            cursor = await self._session.write(
                "UPDATE jobs SET status = 'cancelled', updated_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (utc_text(updated_at), job_id),
            )
            return cursor.rowcount == 1

    async def active_jobs(self, user_id: int | None = None) -> list[Job]:
        # The literal IN list matches the partial indexes' predicate.
        if user_id is None:
            rows = await self._session.fetch_rows(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running')"
                " ORDER BY created_at, rowid"
            )
        else:
            rows = await self._session.fetch_rows(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running') AND user_id = ?"
                " ORDER BY created_at, rowid",
                (user_id,),
            )
        return [_job(row) for row in rows]

    async def job_ids(
        self, *, user_id: int | None = None, style_id: int | None = None
    ) -> list[str]:
        if user_id is None and style_id is None:
            return []
        rows = await self._session.fetch_rows(
            "SELECT id FROM jobs WHERE (? IS NULL OR user_id = ?) AND (? IS NULL OR style_id = ?)"
            " ORDER BY created_at, rowid",
            (user_id, user_id, style_id, style_id),
        )
        return [str(row[0]) for row in rows]


def _job(row: sqlite3.Row) -> Job:
    return from_row(
        Job,
        row,
        origin=Requester(**json.loads(row["origin"])),
        status=JobStatus(row["status"]),
        created_at=utc_time(row["created_at"]),
        updated_at=utc_time(row["updated_at"]),
    )
