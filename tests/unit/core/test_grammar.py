"""The one typed grammar (console, Telegram): every command line to the core's command."""

from __future__ import annotations

import pytest

from stylebot.bot.core.admin_commands import PauseTraining
from stylebot.bot.core.commands import (
    AcceptCaptions,
    CancelJob,
    ConfirmConsent,
    DeleteStyle,
    DiscardUploads,
    EraseMyData,
    ExportStyle,
    Imagine,
    ListStyles,
    SetCaption,
    ShareStyle,
    ShowCaptions,
    ShowStatus,
    StyleInfo,
    SuggestCaptions,
    TrainStyle,
    UnshareStyle,
)
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.grammar import (
    ActAs,
    AskConsent,
    NeedsFiles,
    Quit,
    ShowHelp,
    parse,
    parse_confirmation,
    parse_imagine,
    split_command,
    strength_option,
)
from stylebot.bot.core.model import Requester


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


ME = Requester("telegram", "1", "Ada", chat_id="c1")


def parsed(line: str) -> object:
    command = split_command(line)
    assert command is not None
    return parse(command, ME)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/style share public ink", ShareStyle(ME, "ink", public=True)),
        ("/style share ink public", ShareStyle(ME, "ink", public=True)),
        ("/style share ink PUBLIC", ShareStyle(ME, "ink", public=True)),
        ("/style share ink", ShareStyle(ME, "ink")),
        ("/style share public", ShareStyle(ME, "public")),
        ("/style share public public", ShareStyle(ME, "public", public=True)),
        ("/style info ink", StyleInfo(ME, "ink")),
        ("/style unshare ink", UnshareStyle(ME, "ink")),
        ("/style delete ink", DeleteStyle(ME, "ink")),
        ("/style export ink", ExportStyle(ME, "ink")),
        ("/train ink", TrainStyle(ME, "ink")),
        ("/consent own-work", ConfirmConsent(ME, "own-work", rights_confirmed=True)),
        ("/consent", AskConsent()),
        ("/discard", DiscardUploads(ME)),
        ("/styles", ListStyles(ME)),
        ("/status", ShowStatus(ME)),
        ("/cancel", CancelJob(ME, None)),
        ("/cancel j-1", CancelJob(ME, "j-1")),
        ("/forgetme", EraseMyData(ME)),
        ("/forgetme confirm", EraseMyData(ME, confirmed=True)),
        ("/imagine a cat style:ink", Imagine(ME, "a cat", style="ink")),
        ('/upload a.png "b c.png"', NeedsFiles("upload", ("a.png", "b c.png"))),
        ("/verify x.png", NeedsFiles("verify", ("x.png",))),
        ("/optout", NeedsFiles("optout")),
        (
            '/upload a.png "b c.png" caption:neon city,  night',
            NeedsFiles("upload", ("a.png", "b c.png"), "neon city,  night"),
        ),
        ("/upload a.png CAPTION:ink", NeedsFiles("upload", ("a.png",), "ink")),
        ("/upload a.png caption: ", NeedsFiles("upload", ("a.png",))),
        ("/upload my-caption:x.png", NeedsFiles("upload", ("my-caption:x.png",))),
        ("/captions", ShowCaptions(ME)),
        ("/captions ink", ShowCaptions(ME, "ink")),
        ('/captions 2 a city, "at" night', SetCaption(ME, 2, 'a city, "at" night')),
        ("/captions 3 -", SetCaption(ME, 3, "-")),
        ("/captions auto", SuggestCaptions(ME)),
        ("/captions accept", AcceptCaptions(ME)),
        ("/captions style:auto", ShowCaptions(ME, "auto")),
        ("/captions Style:accept", ShowCaptions(ME, "accept")),
        ("/captions Accept 2", AcceptCaptions(ME, 2)),
        ("/as bob", ActAs("bob")),
        ("/help", ShowHelp()),
        ("/start", ShowHelp()),
        ("/admin", ShowHelp(admin=True)),
        ("/admin pause", PauseTraining(ME)),
        ("/quit", Quit()),
    ],
)
def test_every_typed_command_parses_to_the_cores_command(line: str, expected: object) -> None:
    assert parsed(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "/style share ink wash public",
        "/style share",
        "/style info",
        "/style info ink wash",
        "/style rename ink",
        "/train",
        "/train my style",
        "/captions 2",
        "/captions ink wash",
        "/captions auto now",
        "/captions accept two",
        "/captions style:",
        "/captions style:ink wash",
        "/cancel a b",
        '/upload "unclosed.png',
        "/as",
        "/admin frobnicate",
        "/frobnicate",
    ],
)
def test_a_line_that_does_not_fit_says_how_and_builds_no_command(line: str) -> None:
    with pytest.raises(CommandSyntaxError):
        parsed(line)


def test_a_strength_reads_the_same_typed_or_from_a_form() -> None:
    # Discord's "Restyle with…" form reads its field with the typed grammar's rule.
    assert strength_option("0.4") == 0.4
    assert strength_option("  ") is None
    with pytest.raises(CommandSyntaxError, match=r"strength:lots is not a number"):
        strength_option("lots")
