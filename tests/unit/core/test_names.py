"""Style names at their edges (length, first character, case, spaces), the trigger
phrase, what the refusal shows of a bad name, and user text made safe to echo."""

from __future__ import annotations

import pytest

from stylebot.bot.core.names import (
    NAME_RULE,
    InvalidStyleName,
    normalise_style_name,
    printable,
    trigger_phrase,
)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("ab", "ab"),
        ("a" + "b" * 31, "a" + "b" * 31),
        ("\tInk_Wash-2  ", "ink_wash-2"),
        ("INK", "ink"),
    ],
)
def test_a_valid_name_is_stripped_and_lowered(raw: str, name: str) -> None:
    assert normalise_style_name(raw) == name


@pytest.mark.parametrize("raw", ["a", "a" + "b" * 32, "2ink", "_ink", "-ink", "in k", "ink!", ""])
def test_an_invalid_name_is_refused_with_the_rule(raw: str) -> None:
    with pytest.raises(InvalidStyleName) as refused:
        normalise_style_name(raw)
    assert str(refused.value) == f"{raw!r} is not a valid style name. Use {NAME_RULE}."


@pytest.mark.parametrize("raw", ["x" * 41, "in\x00k", "bad\nname", " " + "x" * 40])
def test_a_long_or_unprintable_bad_name_is_not_echoed(raw: str) -> None:
    with pytest.raises(InvalidStyleName) as refused:
        normalise_style_name(raw)
    assert str(refused.value) == f"'that name' is not a valid style name. Use {NAME_RULE}."


def test_a_bad_name_of_exactly_40_characters_is_echoed() -> None:
    raw = "x" * 40
    with pytest.raises(InvalidStyleName, match=f"^'{raw}' is not"):
        normalise_style_name(raw)


def test_the_trigger_phrase_spells_the_name_as_words() -> None:
    assert trigger_phrase("ink") == "sbt ink style"
    assert trigger_phrase("ink-wash_2-b") == "sbt ink wash 2 b style"


def test_printable_drops_control_characters_and_path_separators() -> None:
    assert printable("../a\\b/c\x00d\ne.png") == "..abcde.png"
    assert printable("X-ray") == "X-ray"


def test_printable_keeps_the_end_of_long_text() -> None:
    assert printable("a" + "b" * 60) == "b" * 60
    assert printable("c" * 60) == "c" * 60
    assert printable("abcdef", limit=3) == "def"


@pytest.mark.parametrize("text", ["", "///", "\x00\\"])
def test_printable_says_file_when_nothing_is_left(text: str) -> None:
    assert printable(text) == "file"
