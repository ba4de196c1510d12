"""The fingerprint and opt-out lookups search their band indexes, never scan the tables:
the statements the real repository runs are traced and SQLite asked for their plans."""

from __future__ import annotations

import re
from pathlib import Path

import aiosqlite

from stylebot.bot.core.fingerprints import RESEMBLES_MAX_BITS
from stylebot.bot.core.hash_bands import band_probes
from stylebot.bot.core.perceptual import PerceptualHash
from stylebot.storage.database import open_database
from stylebot.storage.unit_of_work import SqliteUnitOfWork

PHASH = PerceptualHash(0x123456789ABCDEF0, True)
INDEXED = re.compile(r"SEARCH .* USING (COVERING INDEX|INDEX|PRIMARY KEY|INTEGER PRIMARY KEY)")


async def plan_lines(db: aiosqlite.Connection, statement: str) -> list[str]:
    rows = await db.execute_fetchall(f"EXPLAIN QUERY PLAN {statement}")
    return [str(row[3]) for row in rows]


async def traced(db: aiosqlite.Connection, table: str, run: object) -> str:
    """The one statement naming `table` that awaiting `run` sends (values bound)."""
    seen: list[str] = []
    await db.set_trace_callback(seen.append)
    await run  # type: ignore[misc]
    await db.set_trace_callback(None)
    [statement] = [s for s in seen if table in s]
    return statement


def band_table_lines(lines: list[str], table: str) -> list[str]:
    return [line for line in lines if table in line]


async def test_the_fingerprint_lookup_searches_the_band_index(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "stylebot.sqlite")
    try:
        repo = SqliteUnitOfWork(db)
        probes = band_probes(PHASH, RESEMBLES_MAX_BITS)
        statement = await traced(
            db, "output_fingerprint_bands", repo.outputs.outputs_with_bands(probes)
        )
        lines = await plan_lines(db, statement)
        on_bands = band_table_lines(lines, "output_fingerprint_bands")
        assert on_bands, lines
        assert all(INDEXED.search(line) for line in on_bands), lines
        assert not any(line.startswith("SCAN output_fingerprint_bands") for line in lines)
    finally:
        await db.close()


async def test_the_opt_out_lookup_searches_the_band_index(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "stylebot.sqlite")
    try:
        registry = SqliteUnitOfWork(db).optouts
        assert band_probes(PHASH, 10)
        statement = await traced(db, "optout_bands", registry.candidates("0" * 64, PHASH, 10))
        lines = await plan_lines(db, statement)
        on_bands = band_table_lines(lines, "optout_bands")
        assert on_bands, lines
        assert all(INDEXED.search(line) for line in on_bands), lines
        assert not any(line.startswith("SCAN optout_bands") for line in lines)
    finally:
        await db.close()
