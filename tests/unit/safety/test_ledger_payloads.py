"""What each kind of consent ledger entry records, key by key, and the exact words of a
chain report. The payloads are the evidence format: anyone can recompute the hashes
from them, and `stylebot consent verify` readers rely on the names, so a renamed,
dropped or re-cased key is a break of the format, not a detail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from tests.unit.safety.test_ledger import T0, a_chain

from stylebot.bot.core.ledger import (
    GENESIS_HASH,
    ImageEvidence,
    LedgerKind,
    canonical_json,
    chain_entry,
    compute_entry_hash,
    consent_payload,
    erasure_payload,
    optout_removal_payload,
    revocation_payload,
    training_payload,
    utc_text,
    verify_chain,
)


def test_a_consent_entry_records_the_terms_the_licence_the_people_and_each_image() -> None:
    payload = consent_payload(
        consent_id=3,
        platform="discord",
        platform_user_id="42",
        terms_version="2026-11-22",
        terms_sha256="c" * 64,
        licence="CC-BY-4.0",
        licence_is_spdx=True,
        identifiable_people=True,
        people_agreed=False,
        images=[ImageEvidence("b" * 64, "1" * 16), ImageEvidence("a" * 64, "2" * 16)],
    )
    assert payload == {
        "consent_id": 3,
        "platform": "discord",
        "platform_user_id": "42",
        "terms_version": "2026-11-22",
        "terms_sha256": "c" * 64,
        "licence": "CC-BY-4.0",
        "licence_is_spdx": True,
        "rights_confirmed": True,
        "identifiable_people": True,
        "people_agreed": False,
        "images": [
            {"sha256": "a" * 64, "phash": "2" * 16},
            {"sha256": "b" * 64, "phash": "1" * 16},
        ],
    }


def test_a_training_entry_ties_the_consent_to_the_style_by_id() -> None:
    payload = training_payload(
        consent_id=3,
        style_id=9,
        platform="telegram",
        platform_user_id="7",
        base_model="sd15",
        image_sha256=["b" * 64, "a" * 64],
    )
    assert payload == {
        "consent_id": 3,
        "style_id": 9,
        "platform": "telegram",
        "platform_user_id": "7",
        "base_model": "sd15",
        "image_sha256": ["a" * 64, "b" * 64],
    }


def test_a_revocation_entry_records_the_style_its_images_and_what_was_deleted() -> None:
    payload = revocation_payload(
        style_id=9,
        consent_id=3,
        platform="discord",
        platform_user_id="42",
        reason="the owner deleted the style",
        image_sha256=["b" * 64, "a" * 64],
        deleted_blobs=5,
    )
    assert payload == {
        "style_id": 9,
        "consent_id": 3,
        "platform": "discord",
        "platform_user_id": "42",
        "reason": "the owner deleted the style",
        "image_sha256": ["a" * 64, "b" * 64],
        "deleted_blobs": 5,
    }


def test_an_erasure_entry_records_what_was_erased() -> None:
    payload = erasure_payload(
        platform="discord",
        platform_user_id="42",
        style_ids=[8, 2],
        uploads=1,
        outputs=2,
        cancelled_jobs=3,
        deleted_blobs=4,
        optouts_kept=5,
    )
    assert payload == {
        "platform": "discord",
        "platform_user_id": "42",
        "reason": "the user asked for their data to be erased",
        "style_ids": [2, 8],
        "uploads": 1,
        "outputs": 2,
        "cancelled_jobs": 3,
        "deleted_blobs": 4,
        "optouts_kept": 5,
    }


def test_an_optout_removal_entry_records_the_registration_and_who_removed_it() -> None:
    paris = timezone(timedelta(hours=1))
    payload = optout_removal_payload(
        optout_id=12,
        sha256="d" * 64,
        phash="e" * 16,
        registrant="f" * 32,
        registered_at=datetime(2026, 11, 22, 13, 30, tzinfo=paris),
        scope="discord:guild-1",
        removed_by="discord:mia",
        authority="manager",
        reason="not theirs",
    )
    assert payload == {
        "optout_id": 12,
        "sha256": "d" * 64,
        "phash": "e" * 16,
        "registrant": "f" * 32,
        "registered_at": "2026-11-22T12:30:00.000000+00:00",
        "scope": "discord:guild-1",
        "removed_by": "discord:mia",
        "authority": "manager",
        "reason": "not theirs",
    }


def test_canonical_json_is_sorted_compact_and_unescaped() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'


def test_a_naive_time_cannot_be_written_into_a_hash() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        utc_text(datetime(2026, 1, 1))
    assert utc_text(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000+00:00"


class NoOffset(tzinfo):
    """A time zone that does not know its offset: such a time is as good as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_a_time_with_no_known_offset_cannot_be_written_into_a_hash() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        utc_text(datetime(2026, 1, 1, tzinfo=NoOffset()))


@pytest.fixture
def host_in_paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own time zone is not UTC (as on many an operator's server)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("host_in_paris")
def test_times_are_written_in_utc_whatever_the_hosts_time_zone() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 11, 22, 13, 30, tzinfo=paris)
    assert utc_text(moment) == "2026-11-22T12:30:00.000000+00:00"
    entry = chain_entry(None, LedgerKind.CONSENT, {"n": 1}, moment)
    assert entry.recorded_at.utcoffset() == timedelta(0)


def test_an_entry_hash_is_the_sha256_of_its_canonical_fields() -> None:
    import hashlib

    body = (
        '{"kind":"consent","payload":{"n":1},"prev_hash":"' + GENESIS_HASH + '",'
        '"recorded_at":"2026-11-22T12:00:00.000000+00:00","seq":1}'
    )
    expected = hashlib.sha256(body.encode()).hexdigest()
    assert compute_entry_hash(1, "consent", T0, {"n": 1}, GENESIS_HASH) == expected
    entry = chain_entry(None, LedgerKind.CONSENT, {"n": 1}, T0)
    assert (entry.seq, entry.kind, entry.prev_hash, entry.entry_hash) == (
        1,
        "consent",
        GENESIS_HASH,
        expected,
    )


def test_the_words_of_each_kind_of_break() -> None:
    chain = a_chain(3)
    changed = [chain[0], replace(chain[1], payload={"consent_id": 99}), chain[2]]
    assert [(b.seq, b.problem) for b in verify_chain(changed).breaks] == [
        (2, "its content was changed after it was recorded")
    ]
    gap = [chain[0], chain[2]]
    head, link = chain[1].entry_hash[:12], chain[0].entry_hash[:12]
    assert [(b.seq, b.problem) for b in verify_chain(gap).breaks] == [
        (3, "expected entry 2 here, found 3 (entries removed, inserted or reordered)"),
        (3, f"does not link to the entry before it (prev_hash {head}..., expected {link}...)"),
    ]


def test_an_entry_keeps_its_time_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    entry = chain_entry(None, LedgerKind.CONSENT, {"n": 1}, T0.astimezone(paris))
    assert entry.recorded_at == T0
    assert entry.recorded_at.tzinfo is UTC
