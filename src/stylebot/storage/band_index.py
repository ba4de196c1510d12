"""The SQL that asks a band index (stylebot.bot.core.hash_bands) for the rows a hash may
match: the probes as a constant table joined to the index, so SQLite does one index
search per probe. (``(band, value) IN (VALUES ...)`` instead reads the whole table.)"""

from __future__ import annotations

from collections.abc import Sequence


def ids_with_bands(
    table: str, id_column: str, probes: Sequence[tuple[int, str]]
) -> tuple[str, list[int | str]]:
    """A SELECT of `id_column` from the band table `table` (columns ``band``, ``value``)
    for every row matching one of `probes`, and its parameters. `table` and `id_column`
    are this package's own names, never user input. `probes` must not be empty."""
    if not probes:
        raise ValueError("no probes: a flat hash has nothing to look up")
    values = ", ".join("(?, ?)" for _ in probes)
    sql = (
        f"SELECT {table}.{id_column} FROM (VALUES {values}) AS probe JOIN {table}"
        f" ON {table}.band = probe.column1 AND {table}.value = probe.column2"
    )
    params: list[int | str] = [part for probe in probes for part in probe]
    return sql, params
