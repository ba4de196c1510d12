"""`SqliteOutputStore`: the core's `OutputStore` port (table `outputs`), on the shared session."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.ledger import utc_text
from stylebot.bot.core.model import Output
from stylebot.storage.band_index import ids_with_bands
from stylebot.storage.session import (
    SqliteStore,
    check_seed,
    from_row,
    integrity_error,
    utc_time,
)


class SqliteOutputStore(SqliteStore):
    async def add_outputs(self, outputs: Sequence[Output]) -> None:
        """Store a batch of outputs: all of them or, on any error, none."""
        rows = []
        for output in outputs:
            check_seed(output.seed)
            rows.append(
                (
                    output.id,
                    output.job_id,
                    output.user_id,
                    output.style_id,
                    output.prompt,
                    output.negative_prompt,
                    output.seed,
                    output.steps,
                    float(output.guidance),
                    output.width,
                    output.height,
                    output.blob_key,
                    utc_text(output.created_at),
                    output.maker_name,
                    output.maker_username,
                    None if output.made_in_private is None else int(output.made_in_private),
                    output.fingerprint,
                    output.source_key,
                    output.source_output_id,
                    output.denoising_strength,
                    _box_text(output.keep_box),
                    _box_text(output.repaint_box),
                    output.mask_key,
                    output.follow,
                )
            )
        async with self._session.transaction():
            for row in rows:
                try:
                    await self._session.write(
                        "INSERT INTO outputs (id, job_id, user_id, style_id, prompt,"
                        " negative_prompt, seed, steps, guidance, width, height, blob_key,"
                        " created_at, maker_name, maker_username, made_in_private,"
                        " fingerprint, source_key, source_output_id, denoising_strength,"
                        " keep_box, repaint_box, mask_key, follow) VALUES"
                        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                except sqlite3.IntegrityError as exc:
                    missing = f"output {row[0]!r}: its job, user or style does not exist"
                    duplicate = f"output {row[0]!r} already exists"
                    raise integrity_error(exc, missing, duplicate) from exc

    async def get_output(self, output_id: str) -> Output | None:
        row = await self._session.fetch_row("SELECT * FROM outputs WHERE id = ?", (output_id,))
        return _output(row) if row is not None else None

    async def user_outputs(self, user_id: int) -> list[Output]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM outputs WHERE user_id = ? ORDER BY created_at, rowid", (user_id,)
        )
        return [_output(row) for row in rows]

    async def style_outputs(self, style_id: int) -> list[Output]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM outputs WHERE style_id = ? ORDER BY created_at, rowid", (style_id,)
        )
        return [_output(row) for row in rows]

    async def job_outputs(self, job_id: str) -> list[Output]:
        rows = await self._session.fetch_rows(
            "SELECT * FROM outputs WHERE job_id = ? ORDER BY rowid", (job_id,)
        )
        return [_output(row) for row in rows]

    async def set_output_blob(self, output_id: str, blob_key: str, seed: int) -> None:
        """Record where the finished image is, and the seed it was really made with."""
        check_seed(seed)
        await self._update_row("outputs", output_id, "blob_key = ?, seed = ?", blob_key, seed)

    async def set_output_fingerprint(self, output_id: str, fingerprint: str) -> None:
        """A trigger of migration 0009 indexes the fingerprint's bands."""
        await self._update_row("outputs", output_id, "fingerprint = ?", fingerprint)

    async def outputs_with_bands(self, probes: Sequence[tuple[int, str]]) -> list[Output]:
        if not probes:
            return []
        matching, params = ids_with_bands("output_fingerprint_bands", "output_id", probes)
        rows = await self._session.fetch_rows(
            f"SELECT * FROM outputs WHERE id IN ({matching}) ORDER BY created_at, rowid",
            params,
        )
        return [_output(row) for row in rows]

    async def delete_output(self, output_id: str) -> str | None:
        async with self._session.transaction():
            row = await self._session.fetch_row(
                "SELECT blob_key FROM outputs WHERE id = ?", (output_id,)
            )
            if row is None:
                raise RecordNotFound(f"output {output_id!r} does not exist")
            await self._session.write("DELETE FROM outputs WHERE id = ?", (output_id,))
        blob_key: str | None = row[0]
        return blob_key


def _output(row: sqlite3.Row) -> Output:
    made_in_private = row["made_in_private"]
    return from_row(
        Output,
        row,
        created_at=utc_time(row["created_at"]),
        made_in_private=None if made_in_private is None else bool(made_in_private),
        keep_box=_box(row["keep_box"]),
        repaint_box=_box(row["repaint_box"]),
    )


def _box_text(box: tuple[int, int, int, int] | None) -> str | None:
    return None if box is None else ",".join(str(side) for side in box)


def _box(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    left, top, width, height = (int(part) for part in text.split(","))
    return left, top, width, height
