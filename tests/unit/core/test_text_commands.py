"""Typed commands (console, Telegram) parse into the same options as slash commands."""

from __future__ import annotations

import pytest

from stylebot.bot.core.text_commands import (
    CommandSyntaxError,
    parse_confirmation,
    parse_imagine,
    split_command,
)


def test_split_command_reads_name_and_arguments() -> None:
    parsed = split_command("  /Train  my-style ")
    assert parsed is not None
    assert (parsed.name, parsed.args) == ("train", "my-style")
    assert split_command("hello") is None


def test_a_command_for_another_bot_is_not_ours() -> None:
    assert split_command("/styles@otherbot", bot_username="stylebot") is None
    parsed = split_command("/styles@StyleBot", bot_username="stylebot")
    assert parsed is not None
    assert parsed.name == "styles"


def test_imagine_options_anywhere_and_the_rest_is_the_prompt() -> None:
    args = parse_imagine("a lighthouse style:ink at dawn seed:7 steps:12 count:2")
    assert args.prompt == "a lighthouse at dawn"
    assert (args.style, args.seed, args.steps, args.count) == ("ink", 7, 12, 2)


def test_negative_runs_to_the_next_option() -> None:
    args = parse_imagine("a cat negative:blurry, dark sky size:640x512")
    assert args.prompt == "a cat"
    assert args.negative_prompt == "blurry, dark sky"
    assert (args.width, args.height) == (640, 512)


def test_a_square_size_sets_both_sides() -> None:
    args = parse_imagine("a cat size:256")
    assert (args.width, args.height) == (256, 256)


@pytest.mark.parametrize("text", ["a cat seed:seven", "a cat size:big", "a cat steps:1.5"])
def test_bad_numbers_say_what_is_wrong(text: str) -> None:
    with pytest.raises(CommandSyntaxError, match=r"seed|size|steps"):
        parse_imagine(text)


def test_words_with_colons_that_are_not_options_stay_in_the_prompt() -> None:
    args = parse_imagine("time: 5pm, mood:calm")
    assert args.prompt == "time: 5pm, mood:calm"
    assert args.style is None


def test_a_confirmation_is_the_word_confirm_or_nothing() -> None:
    assert parse_confirmation("", "/forgetme") is False
    assert parse_confirmation("  Confirm ", "/forgetme") is True
    for wrong in ("yes", "confirm now", "c", "--force"):
        with pytest.raises(CommandSyntaxError, match="Nothing was changed"):
            parse_confirmation(wrong, "/forgetme")
