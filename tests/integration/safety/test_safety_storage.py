"""One contract for the consent ledger and opt-out registry, over SQLite and the fakes.

Plus what only SQLite can show: the chain survives reopening the file, the database refuses
to change or delete an entry, two connections appending at once still form one chain, and
`stylebot consent verify` finds a row someone edited in the file.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.fakes.safety import InMemoryConsentLedger, InMemoryOptOutRegistry, InMemoryUsageLog
from tests.support.old_database import database_before

from stylebot.bot.core.ledger import LedgerKind, verify_chain
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.perceptual import NEAR_DUPLICATE_BITS, PerceptualHash
from stylebot.cli import main
from stylebot.config import Settings
from stylebot.storage.ledger import SqliteConsentLedger
from stylebot.storage.optout import SqliteOptOutRegistry
from stylebot.storage.unit_of_work import SqliteUnitOfWork
from stylebot.storage.usage import SqliteUsageLog

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "memory"])
async def ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqliteConsentLedger | InMemoryConsentLedger]:
    if request.param == "memory":
        yield InMemoryConsentLedger()
        return
    sqlite_ledger_records = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    sqlite_ledger = sqlite_ledger_records.ledger
    yield sqlite_ledger
    await sqlite_ledger_records.close()


@pytest.fixture(params=["sqlite", "memory"])
async def optouts(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqliteOptOutRegistry | InMemoryOptOutRegistry]:
    if request.param == "memory":
        yield InMemoryOptOutRegistry()
        return
    registry_records = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    registry = registry_records.optouts
    yield registry
    await registry_records.close()


async def test_appends_form_a_chain_that_reads_back_equal(
    ledger: SqliteConsentLedger | InMemoryConsentLedger,
) -> None:
    payload = {"consent_id": 1, "note": "ünïcode ✓", "images": [{"sha256": "a" * 64}]}
    first = await ledger.append(LedgerKind.CONSENT, payload, T0)
    second = await ledger.append(LedgerKind.REVOCATION, {"style_id": 3}, T0 + timedelta(1))
    stored = await ledger.entries()
    assert stored == [first, second]
    assert stored[0].payload == payload
    assert stored[0].recorded_at == T0
    assert verify_chain(stored).intact


async def test_an_opt_out_is_registered_once_per_person(
    optouts: SqliteOptOutRegistry | InMemoryOptOutRegistry,
) -> None:
    image = OptedOutImage("discord", "7", "a" * 64, "00ff00ff00ff00ff", T0)
    assert await optouts.add(image)
    assert not await optouts.add(image)
    assert await optouts.add(OptedOutImage("telegram", "7", "a" * 64, "00ff00ff00ff00ff", T0))
    stored = list(reversed(await optouts.listing(None)))
    assert [(i.platform, i.sha256, i.phash, i.created_at) for i in stored] == [
        ("discord", "a" * 64, "00ff00ff00ff00ff", T0),
        ("telegram", "a" * 64, "00ff00ff00ff00ff", T0),
    ]


async def test_the_sqlite_chain_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.db"
    first_records = await SqliteUnitOfWork.open(path)
    first = first_records.ledger
    await first.append(LedgerKind.CONSENT, {"n": 1}, T0)
    await first_records.close()
    second_records = await SqliteUnitOfWork.open(path)
    second = second_records.ledger
    try:
        entry = await second.append(LedgerKind.CONSENT, {"n": 2}, T0)
        assert entry.seq == 2
        assert verify_chain(await second.entries()).intact
    finally:
        await second_records.close()


async def test_the_database_refuses_to_update_or_delete_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.db"
    ledger_records = await SqliteUnitOfWork.open(path)
    ledger = ledger_records.ledger
    await ledger.append(LedgerKind.CONSENT, {"n": 1}, T0)
    await ledger_records.close()
    with sqlite3.connect(path) as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE consent_ledger SET payload = '{}' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM consent_ledger")
        assert db.execute("SELECT COUNT(*) FROM consent_ledger").fetchone()[0] == 1


async def test_two_connections_appending_at_once_make_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.db"
    one_records = await SqliteUnitOfWork.open(path)
    one = one_records.ledger
    two_records = await SqliteUnitOfWork.open(path)
    two = two_records.ledger
    try:
        await asyncio.gather(
            *((one if n % 2 else two).append(LedgerKind.CONSENT, {"n": n}, T0) for n in range(20))
        )
        entries = await one.entries()
        assert [e.seq for e in entries] == list(range(1, 21))
        assert verify_chain(entries).intact
    finally:
        await one_records.close()
        await two_records.close()


async def _ledger_file(data_dir: Path, entries: int) -> Path:
    path = Settings(data_dir=data_dir).database_path
    ledger_records = await SqliteUnitOfWork.open(path)
    ledger = ledger_records.ledger
    for n in range(entries):
        await ledger.append(LedgerKind.CONSENT, {"consent_id": n + 1}, T0 + timedelta(n))
    await ledger_records.close()
    return path


async def test_consent_verify_passes_an_intact_ledger_and_checks_the_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ledger_file(tmp_path, 3)
    assert await asyncio.to_thread(main, ["--data-dir", str(tmp_path), "consent", "verify"]) == 0
    out = capsys.readouterr().out
    assert "3 entries, intact" in out
    head = out.rsplit("head ", 1)[1].strip()
    ok = ["--data-dir", str(tmp_path), "consent", "verify", "--expect-head", head]
    assert await asyncio.to_thread(main, ok) == 0
    wrong = [*ok[:-1], "f" * 64]
    assert await asyncio.to_thread(main, wrong) == 1
    assert "not the expected" in capsys.readouterr().out


async def test_consent_verify_reports_a_row_tampered_with_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _ledger_file(tmp_path, 4)
    with sqlite3.connect(path) as db:
        # What a tamperer with the file can do: drop the guard, then edit.
        db.execute("DROP TRIGGER consent_ledger_no_update")
        db.execute("""UPDATE consent_ledger SET payload = '{"consent_id":99}' WHERE seq = 2""")
    status = await asyncio.to_thread(main, ["--data-dir", str(tmp_path), "consent", "verify"])
    out = capsys.readouterr().out
    assert status == 1
    assert "entry 2: its content was changed" in out
    assert "BROKEN" in out


async def test_consent_verify_reports_a_deleted_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = await _ledger_file(tmp_path, 4)
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER consent_ledger_no_delete")
        db.execute("DELETE FROM consent_ledger WHERE seq = 3")
    status = await asyncio.to_thread(main, ["--data-dir", str(tmp_path), "consent", "verify"])
    assert status == 1
    assert "entry 4: expected entry 3" in capsys.readouterr().out


def test_consent_verify_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path / "nothing"), "consent", "verify"]) == 2
    assert "no database" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


@pytest.fixture(params=["sqlite", "memory"])
async def usage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqliteUsageLog | InMemoryUsageLog]:
    if request.param == "memory":
        yield InMemoryUsageLog()
        return
    log_records = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    log = log_records.usage
    yield log
    await log_records.close()


async def test_usage_sums_per_user_and_per_scope_since_a_time(
    usage: SqliteUsageLog | InMemoryUsageLog,
) -> None:
    await usage.record("generate", "discord:1", "discord:g", 4, T0)
    await usage.record("generate", "discord:2", "discord:g", 2, T0 + timedelta(hours=1))
    await usage.record("generate", "discord:1", None, 3, T0 + timedelta(hours=2))
    await usage.record("train", "discord:1", "discord:g", 1, T0 + timedelta(hours=3))
    assert await usage.total("generate", T0, user_key="discord:1") == 7
    assert await usage.total("generate", T0, scope="discord:g") == 6
    assert await usage.total("generate", T0 + timedelta(minutes=1), scope="discord:g") == 2
    assert await usage.total("train", T0, user_key="discord:1") == 1
    assert await usage.total("train", T0, user_key="telegram:1") == 0
    times = await usage.request_times("discord:1", T0 + timedelta(hours=1))
    assert times == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]
    with pytest.raises(ValueError, match="exactly one"):
        await usage.total("generate", T0)


async def test_forgetting_a_user_unnames_their_usage_and_keeps_what_limits_count(
    usage: SqliteUsageLog | InMemoryUsageLog,
) -> None:
    """Rows older than `keep_since` go; later ones keep counting for the same person
    and their server under a code; other people's rows are untouched."""
    old, recent = T0 - timedelta(days=2), T0 + timedelta(hours=1)
    await usage.record("generate", "discord:1", "discord:g", 7, old)
    await usage.record("generate", "discord:1", "discord:g", 4, recent)
    await usage.record("train", "discord:1", None, 1, recent)
    await usage.record("generate", "discord:2", "discord:g", 2, recent)
    await usage.record("generate", "telegram:1", None, 5, recent)

    assert await usage.forget("discord:1", keep_since=T0) == 3
    assert await usage.forget("discord:1", keep_since=T0) == 0  # nothing names them now
    assert await usage.total("generate", old, user_key="discord:1") == 4
    assert await usage.total("train", T0, user_key="discord:1") == 1
    assert await usage.request_times("discord:1", old) == [recent, recent]
    assert await usage.total("generate", old, scope="discord:g") == 6
    assert await usage.total("generate", T0, user_key="discord:2") == 2
    assert await usage.total("generate", T0, user_key="telegram:1") == 5
    # Someone else's erasure a day later drops the coded rows that aged out.
    await usage.forget("discord:2", keep_since=recent + timedelta(seconds=1))
    assert await usage.total("generate", old, user_key="discord:1") == 0


async def test_the_code_names_no_one_in_the_sqlite_file(tmp_path: Path) -> None:
    log_records = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    log = log_records.usage
    try:
        await log.record("generate", "discord:123456789", None, 1, T0)
        await log.forget("discord:123456789", keep_since=T0 - timedelta(days=1))
    finally:
        await log_records.close()
    with sqlite3.connect(tmp_path / "stylebot.db") as db:
        keys = [row[0] for row in db.execute("SELECT user_key FROM usage_events")]
    assert len(keys) == 1
    assert keys[0].startswith("erased:")
    assert "123456789" not in keys[0]
    # Reopened, the store computes the same code: the row still counts for them.
    log_records = await SqliteUnitOfWork.open(tmp_path / "stylebot.db")
    log = log_records.usage
    try:
        assert await log.total("generate", T0, user_key="discord:123456789") == 1
        assert await log.total("generate", T0, user_key="discord:987654321") == 0
    finally:
        await log_records.close()


async def test_reassigning_opt_outs_keeps_them_and_unlinks_the_person(
    optouts: SqliteOptOutRegistry | InMemoryOptOutRegistry,
) -> None:
    await optouts.add(OptedOutImage("discord", "7", "a" * 64, "00ff00ff00ff00ff", T0))
    await optouts.add(OptedOutImage("discord", "7", "b" * 64, "0f0f0f0f0f0f0f0f", T0))
    await optouts.add(OptedOutImage("telegram", "7", "a" * 64, "00ff00ff00ff00ff", T0))

    assert await optouts.reassign("discord", "7", "erased-1") == 2
    assert await optouts.reassign("discord", "7", "erased-2") == 0
    stored = sorted((i.platform, i.platform_user_id, i.sha256) for i in await optouts.listing(None))
    assert stored == [
        ("discord", "erased-1", "a" * 64),
        ("discord", "erased-1", "b" * 64),
        ("telegram", "7", "a" * 64),
    ]


def _flipped(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


async def test_candidates_include_every_registration_within_the_threshold(
    optouts: SqliteOptOutRegistry | InMemoryOptOutRegistry,
) -> None:
    rng = random.Random(5)
    query = PerceptualHash(rng.getrandbits(64), True)
    near = {}
    for distance in range(NEAR_DUPLICATE_BITS + 1):  # every distance the check allows
        for copy in range(3):
            phash = PerceptualHash(_flipped(query.value, distance, rng), True)
            sha = f"{distance:032x}{copy:032x}"
            near[sha] = phash.hex
            await optouts.add(OptedOutImage("discord", f"n{copy}", sha, phash.hex, T0))
    for n in range(200):
        phash = PerceptualHash(rng.getrandbits(64), True)
        await optouts.add(OptedOutImage("discord", "far", f"{n:064x}", phash.hex, T0))
    # A flat picture's hash never matches; its exact bytes still do.
    await optouts.add(OptedOutImage("discord", "f", "e" * 64, "flat:" + query.hex, T0))

    found = {i.sha256: i.phash for i in await optouts.candidates("c" * 64, query, 10)}
    assert near.items() <= found.items()
    assert "e" * 64 not in found
    exact = await optouts.candidates("e" * 64, query, 10)
    assert "e" * 64 in {i.sha256 for i in exact}


async def test_a_lookup_reads_a_small_part_of_a_large_registry(tmp_path: Path) -> None:
    # Before the band index every upload read the whole table.
    path = tmp_path / "stylebot.db"
    await (await SqliteUnitOfWork.open(path)).close()  # migrated
    rng = random.Random(6)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO optout_images (platform, platform_user_id, sha256, phash,"
            " created_at, registrant) VALUES ('discord', ?, ?, ?, ?, 'r')",
            [
                (str(n), f"{n:064x}", f"{rng.getrandbits(64):016x}", T0.isoformat())
                for n in range(20_000)
            ],
        )
    registry_records = await SqliteUnitOfWork.open(path)
    registry = registry_records.optouts
    try:
        for _ in range(5):
            unrelated = PerceptualHash(rng.getrandbits(64), True)
            # ~4 bands x 137 probe values x 20000 / 65536: about 170 rows, not 20000.
            assert len(await registry.candidates("c" * 64, unrelated, 10)) < 400
    finally:
        await registry_records.close()


async def test_registrations_from_before_the_index_are_found_and_coded(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.db"
    await database_before(path, 8, lora_key="k", at=T0)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO optout_images (platform, platform_user_id, sha256, phash, created_at)"
            " VALUES ('discord', '7', ?, '00ff00ff00ff00ff', ?)",
            ("a" * 64, T0.isoformat()),
        )
    registry_records = await SqliteUnitOfWork.open(path)
    registry = registry_records.optouts
    try:
        query = PerceptualHash.from_hex("00ff00ff00ff00fe")
        [found] = await registry.candidates("c" * 64, query, 10)
        assert found.sha256 == "a" * 64
        assert found.registrant  # coded on first use
        assert await registry.count_registered_by("discord", "7") == 1
    finally:
        await registry_records.close()


async def test_counts_by_registrant_survive_reassignment(
    optouts: SqliteOptOutRegistry | InMemoryOptOutRegistry,
) -> None:
    for n in range(3):
        when = T0 + timedelta(hours=n * 12)
        await optouts.add(OptedOutImage("discord", "7", f"{n:064x}", "00ff00ff00ff00ff", when))
    assert await optouts.count_registered_by("discord", "7") == 3
    assert await optouts.count_registered_by("discord", "7", T0 + timedelta(hours=1)) == 2
    assert await optouts.count_naming("discord", "7") == 3
    await optouts.reassign("discord", "7", "erased-1")
    assert await optouts.count_naming("discord", "7") == 0
    assert await optouts.count_registered_by("discord", "7") == 3  # erasing resets no cap
    assert await optouts.count_registered_by("telegram", "7") == 0


async def test_listing_and_removing_keep_to_the_scope(
    optouts: SqliteOptOutRegistry | InMemoryOptOutRegistry,
) -> None:
    for n, scope in enumerate(["discord:g1", "discord:g1", "discord:g2", None]):
        image = OptedOutImage("discord", f"u{n % 2}", f"{n:064x}", "00ff00ff00ff00ff", T0)
        await optouts.add(replace(image, scope=scope))
    here = await optouts.listing("discord:g1")
    assert [i.sha256 for i in here] == [f"{1:064x}", f"{0:064x}"]  # newest first
    assert len(await optouts.listing(None)) == 4
    other = (await optouts.listing("discord:g2"))[0]
    assert await optouts.remove("discord:g1", ids=[other.id]) == []  # not this scope's
    registrant = here[0].registrant
    gone = await optouts.remove("discord:g1", registrant=registrant)
    assert [i.sha256 for i in gone] == [f"{1:064x}"]
    assert len(await optouts.listing(None)) == 3
    assert await optouts.remove(None) == []  # nothing named, nothing removed
