"""Finding the licence a user names, by id or label, in any case, with or without spaces
and dashes; nothing else matches."""

from __future__ import annotations

import pytest

from stylebot.bot.core.consent import LICENCES, find_licence


@pytest.mark.parametrize(
    ("text", "licence_id"),
    [
        ("own-work", "own-work"),
        ("My own work", "own-work"),
        ("OWN WORK", "own-work"),
        ("cc0 1.0", "CC0-1.0"),
        ("cc0", "CC0-1.0"),
        ("Public domain", "CC0-1.0"),
        ("CC0 (public domain)", "CC0-1.0"),
        ("cc by 4.0", "CC-BY-4.0"),
        ("CC-BY-SA-4.0", "CC-BY-SA-4.0"),
        ("licensed", "licensed"),
        ("Licensed to me with permission to train", "licensed"),
    ],
)
def test_a_licence_is_found_by_id_or_label(text: str, licence_id: str) -> None:
    found = find_licence(text)
    assert found is not None
    assert found.id == licence_id


@pytest.mark.parametrize("text", ["", "gpl", "cc by", "CC-BY-NC-4.0", "lıcensed", "own work!x"])
def test_anything_else_is_no_licence(text: str) -> None:
    # "cc by" names no version (CC BY has several, CC0 one). "lıcensed" has a dotless
    # i: upper-cased it would read LICENSED; compared lower-case (as the ids are
    # written) it is not a licence.
    assert find_licence(text) is None


def test_every_licence_finds_itself() -> None:
    assert [find_licence(licence.label) for licence in LICENCES] == list(LICENCES)
