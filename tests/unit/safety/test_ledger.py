"""The consent ledger's chain rules: hashing, linking, and finding every kind of break."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.fakes.safety import InMemoryConsentLedger

from stylebot.bot.core.ledger import (
    GENESIS_HASH,
    ImageEvidence,
    LedgerEntry,
    LedgerKind,
    chain_entry,
    compute_entry_hash,
    consent_payload,
    verify_chain,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def a_chain(length: int) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for n in range(length):
        head = entries[-1] if entries else None
        payload = {"consent_id": n + 1, "images": [{"sha256": f"{n:064x}", "phash": "ab" * 8}]}
        entries.append(chain_entry(head, LedgerKind.CONSENT, payload, T0 + timedelta(seconds=n)))
    return entries


def test_the_first_entry_links_to_genesis_and_each_next_one_to_its_predecessor() -> None:
    chain = a_chain(3)
    assert [e.seq for e in chain] == [1, 2, 3]
    assert chain[0].prev_hash == GENESIS_HASH
    assert chain[1].prev_hash == chain[0].entry_hash
    assert chain[2].prev_hash == chain[1].entry_hash
    report = verify_chain(chain)
    assert report.intact
    assert report.entries == 3
    assert report.head_hash == chain[2].entry_hash


def test_the_hash_is_independent_of_key_order_and_time_zone() -> None:
    from datetime import timezone

    paris = timezone(timedelta(hours=1))
    one = compute_entry_hash(1, "consent", T0, {"a": 1, "b": [2, 3]}, GENESIS_HASH)
    two = compute_entry_hash(
        1, "consent", T0.astimezone(paris), {"b": [2, 3], "a": 1}, GENESIS_HASH
    )
    assert one == two
    assert one != compute_entry_hash(1, "consent", T0, {"a": 1, "b": [3, 2]}, GENESIS_HASH)


def test_an_edited_payload_is_reported_once_at_that_entry() -> None:
    chain = a_chain(4)
    chain[1] = replace(chain[1], payload={**chain[1].payload, "consent_id": 99})
    report = verify_chain(chain)
    assert not report.intact
    assert [b.seq for b in report.breaks] == [2]
    assert "changed" in report.breaks[0].problem


def test_a_removed_entry_is_reported_as_a_gap_and_a_broken_link() -> None:
    chain = a_chain(4)
    del chain[2]
    report = verify_chain(chain)
    assert {b.seq for b in report.breaks} == {4}
    problems = " ".join(b.problem for b in report.breaks)
    assert "expected entry 3" in problems
    assert "does not link" in problems


def test_a_rehashed_edit_still_breaks_the_next_link() -> None:
    # Someone edits entry 2 and recomputes its own hash: entry 3 no longer points to it.
    chain = a_chain(3)
    edited = chain_entry(chain[0], LedgerKind.CONSENT, {"consent_id": 7}, chain[1].recorded_at)
    chain[1] = edited
    report = verify_chain(chain)
    assert [b.seq for b in report.breaks] == [3]


def test_reordered_entries_and_a_changed_time_or_kind_are_caught() -> None:
    chain = a_chain(3)
    swapped = [chain[0], chain[2], chain[1]]
    assert not verify_chain(swapped).intact
    later = list(chain)
    later[0] = replace(later[0], recorded_at=later[0].recorded_at + timedelta(microseconds=1))
    assert [b.seq for b in verify_chain(later).breaks] == [1]
    renamed = list(chain)
    renamed[2] = replace(renamed[2], kind=LedgerKind.REVOCATION)
    assert [b.seq for b in verify_chain(renamed).breaks] == [3]


def test_an_empty_ledger_is_intact_with_the_genesis_head() -> None:
    report = verify_chain([])
    assert report.intact
    assert report.head_hash == GENESIS_HASH


def test_a_naive_time_is_reported_not_raised() -> None:
    chain = a_chain(2)
    chain[1] = replace(chain[1], recorded_at=chain[1].recorded_at.replace(tzinfo=None))
    report = verify_chain(chain)
    assert [b.seq for b in report.breaks] == [2]
    assert "cannot be hashed" in report.breaks[0].problem


def test_consent_payload_sorts_images_so_equal_sets_hash_equal() -> None:
    images = [ImageEvidence("b" * 64, "1" * 16), ImageEvidence("a" * 64, "2" * 16)]
    common = {
        "consent_id": 1,
        "platform": "discord",
        "platform_user_id": "42",
        "terms_version": "v",
        "terms_sha256": "c" * 64,
        "licence": "CC0-1.0",
        "licence_is_spdx": True,
        "identifiable_people": False,
        "people_agreed": None,
    }
    forward = consent_payload(images=images, **common)  # type: ignore[arg-type]
    backward = consent_payload(images=list(reversed(images)), **common)  # type: ignore[arg-type]
    assert forward == backward
    assert [i["sha256"] for i in forward["images"]] == ["a" * 64, "b" * 64]


async def test_the_in_memory_ledger_chains_its_appends() -> None:
    ledger = InMemoryConsentLedger()
    first = await ledger.append(LedgerKind.CONSENT, {"n": 1}, T0)
    second = await ledger.append(LedgerKind.REVOCATION, {"n": 2}, T0)
    assert second.prev_hash == first.entry_hash
    copies = await ledger.entries()
    copies[0].payload["n"] = 5  # editing a copy must not touch the ledger
    assert verify_chain(await ledger.entries()).intact
