"""Replies name commands the way each platform has them (issue 15, point 4).

Every reply kind, with every command the core can name in it, is rendered for every
platform; a command the text then names must be one that platform registers, read from
the adapter's own registration (Discord's command tree, Telegram's command menus, the
console's command list), never from a list kept here. The mentions are every one the
core's source makes, as well as every command. And the core writes no command name of
its own: its texts name commands only as mentions; an adapter's own texts name only
commands its platform has.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import discord
import pytest
from tests.fakes.core import CoreWorld

import stylebot.bot.core as core_package
from stylebot.bot.console.adapter import CONSOLE_COMMANDS, ConsoleAdapter
from stylebot.bot.core.consent import LICENCES, TERMS_TEXT, TERMS_VERSION
from stylebot.bot.core.mentions import CommandName, Mention, mention, spell
from stylebot.bot.core.platform_core import spell_reply
from stylebot.bot.core.replies import (
    ConsentRequest,
    ErasureConfirmation,
    ErrorReply,
    FileReply,
    ImageFile,
    ImagesReady,
    JobFinished,
    JobProgress,
    JobQueued,
    Reply,
    TextReply,
    TrainingRefused,
    VerifyReport,
)
from stylebot.bot.discord.adapter import DiscordAdapter
from stylebot.bot.discord.commands import StyleCommandTree
from stylebot.bot.discord.render import SLASH_COMMANDS, discord_spelling, render
from stylebot.bot.telegram.conversation import text_of
from stylebot.bot.telegram.handlers import TELEGRAM_COMMANDS
from stylebot.bot.telegram.render import consent_text, telegram_spelling
from stylebot.config import Settings

# A "/word" not inside a path or a link.
COMMAND_NAMED = re.compile(r"(?<![\w/.:<])/([a-z][a-z-]*)(?![\w/-])")
EVERY_MENTION = " ".join(
    [
        *(mention(name) for name in CommandName),
        mention(CommandName.TRAIN, "NAME"),
        mention(CommandName.IMAGINE, "a cat", style="ink"),
    ]
)


def _command_names(node: ast.expr) -> list[CommandName]:
    """The `CommandName.X` members an expression names."""
    return [
        CommandName[found.attr]
        for found in ast.walk(node)
        if isinstance(found, ast.Attribute)
        and isinstance(found.value, ast.Name)
        and found.value.id == "CommandName"
    ]


def _word(node: ast.expr) -> str:
    """A literal word as written; anything computed (a style's name...) as a stand-in."""
    return node.value if isinstance(node, ast.Constant) else "NAME"


def core_mentions() -> list[Mention]:
    """Every mention the core's texts make, read from its source: each `mention(...)`
    call with its words and options, its command named there or by a variable the
    function sets (`name = CommandName.SKETCH`), each command that variable may hold."""
    found: set[Mention] = set()
    for path in sorted(Path(core_package.__file__).parent.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            held: dict[str, list[CommandName]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            held.setdefault(target.id, []).extend(_command_names(node.value))
            for node in ast.walk(function):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "mention"
                ):
                    continue
                first = node.args[0]
                names = held.get(first.id, []) if isinstance(first, ast.Name) else []
                names = names or _command_names(first)
                assert names, f"{path.name}:{node.lineno}: which command does it mention?"
                words = tuple(_word(arg) for arg in node.args[1:])
                options = tuple((str(k.arg), _word(k.value)) for k in node.keywords)
                found.update(Mention(name, words, options) for name in names)
    return sorted(found, key=repr)


def _written(found: Mention) -> str:
    return mention(found.command, *found.args, **dict(found.options))


def every_reply() -> list[Reply]:
    """One reply of every kind, each text naming every command the core can name, and
    every mention the core's texts make."""
    text = f"See {EVERY_MENTION} {' '.join(_written(found) for found in core_mentions())}."
    return [
        TextReply(text),
        ErrorReply(text),
        TrainingRefused(text),
        ConsentRequest(text, TERMS_TEXT, TERMS_VERSION, LICENCES, 1),
        JobQueued(text, "j1", "train", 1),
        JobProgress(text, "j1", "train", 1, 10),
        JobFinished(text, "j1", "train", True, private=True, public_text=text),
        ImagesReady(text, "j1", (ImageFile("o1", "o1.png", b"png"),)),
        FileReply(text, "ink.safetensors", b"weights"),
        VerifyReport(text, None),
        ErasureConfirmation(text, 1, 1, 1),
    ]


def discord_commands(world: CoreWorld) -> set[str]:
    """The slash commands the Discord adapter registers, from its own command tree."""
    adapter = DiscordAdapter(world.bot, Settings(discord_token="token"))
    tree = StyleCommandTree(discord.Client(intents=discord.Intents.none()), adapter)
    return {command.name for command in tree.get_commands(type=discord.AppCommandType.chat_input)}


def discord_shows(reply: Reply, tmp_path: Path) -> str:
    shown = render(spell_reply(reply, discord_spelling))
    public = spell_reply(reply, discord_spelling)
    return shown.content + getattr(public, "public_text", "")


def telegram_shows(reply: Reply, tmp_path: Path) -> str:
    spelled = spell_reply(reply, telegram_spelling)
    if isinstance(spelled, ConsentRequest):
        return consent_text(spelled, from_photos=False, style_name=None)
    return text_of(spelled) + getattr(spelled, "public_text", "")


def console_shows(world: CoreWorld) -> Callable[[Reply, Path], str]:
    def shows(reply: Reply, tmp_path: Path) -> str:
        out = io.StringIO()
        console = ConsoleAdapter(world.bot, out, tmp_path / "outputs")
        console.show(spell_reply(reply, console.bot.spelling))
        return out.getvalue()

    return shows


@pytest.mark.parametrize("platform", ["discord", "telegram", "console"])
def test_every_reply_names_only_commands_its_platform_has(
    platform: str, world: CoreWorld, tmp_path: Path
) -> None:
    registered, shows = {
        "discord": (discord_commands(world), discord_shows),
        "telegram": (set(TELEGRAM_COMMANDS), telegram_shows),
        "console": (set(CONSOLE_COMMANDS), console_shows(world)),
    }[platform]
    for reply in every_reply():
        shown = shows(reply, tmp_path)
        named = set(COMMAND_NAMED.findall(shown))
        assert named, f"{type(reply).__name__} on {platform} shows no command: {shown!r}"
        assert named <= registered, (type(reply).__name__, named - registered, shown)
        assert "\u27e6" not in shown, f"a mention left unspelled on {platform}: {shown!r}"


def test_the_core_mentions_read_from_its_source_are_the_ones_it_makes() -> None:
    """The scan sees the mentions the picture and caption replies make (recent ones)."""
    made = core_mentions()
    assert Mention(CommandName.CAPTIONS, ("auto",)) in made
    assert Mention(CommandName.CAPTIONS, ("accept",)) in made
    for command in (CommandName.RESTYLE, CommandName.EXTEND, CommandName.REPAINT):
        assert Mention(command, (), (("style", "NAME"), ("confirm", "yes"))) in made
    assert Mention(CommandName.SKETCH, ("a castle on a hill",), (("style", "NAME"),)) in made


def test_discord_spells_every_core_mention_with_options_its_command_has(
    world: CoreWorld,
) -> None:
    adapter = DiscordAdapter(world.bot, Settings(discord_token="token"))
    tree = StyleCommandTree(discord.Client(intents=discord.Intents.none()), adapter)
    for found in core_mentions():
        if found.command not in SLASH_COMMANDS:
            continue  # spelled as what Discord has instead (the test above checks it)
        command = tree.get_command(SLASH_COMMANDS[found.command].removeprefix("/"))
        assert isinstance(command, discord.app_commands.Command)
        shown = discord_spelling(found)
        options = set(re.findall(r"(?<!\S)([a-z_]+):", shown))
        assert options <= {p.name for p in command.parameters}, (found, shown)


def test_discord_points_to_the_button_that_does_what_the_mention_says() -> None:
    """`/captions accept` takes every suggestion, `/captions accept NUMBER` one: on
    Discord the Accept suggestions button takes them all, an image's is taken by
    submitting the Edit captions modal, which opens with it filled in."""
    every = discord_spelling(Mention(CommandName.CAPTIONS, ("accept",)))
    one = discord_spelling(Mention(CommandName.CAPTIONS, ("accept", "NUMBER")))
    assert "Accept suggestions button" in every
    assert "Accept suggestions" not in one
    assert "Edit captions button" in one
    assert "Suggest captions button" in discord_spelling(Mention(CommandName.CAPTIONS, ("auto",)))


def test_discord_names_its_own_commands_with_their_options(world: CoreWorld) -> None:
    shown = spell_reply(ErrorReply(EVERY_MENTION), discord_spelling).text
    assert "/train name:NAME" in shown
    assert "/imagine prompt:a cat style:ink" in shown
    assert "/forget-me" in shown
    for missing in ("/consent", "/discard", "/forgetme", "/upload"):
        assert missing not in shown


def test_typed_platforms_name_commands_as_typed() -> None:
    shown = spell_reply(TextReply(EVERY_MENTION), telegram_spelling).text
    assert "/train NAME" in shown
    assert "/imagine a cat style:ink" in shown
    assert "/consent" in shown
    assert "/forgetme" in shown


def core_texts() -> list[tuple[str, int, str]]:
    """Every string the core writes but docstrings (file, line, text); the typed
    grammar's own usage lines are for the typed platforms only, and are left out."""
    paths = Path(core_package.__file__).parent.glob("*.py")
    return texts_in(path for path in paths if path.name not in ("grammar.py", "admin_grammar.py"))


def texts_in(paths: Iterable[Path]) -> list[tuple[str, int, str]]:
    """Every string these modules write but docstrings (file, line, text)."""
    found = []
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found += [
            (path.name, node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ]
    return found


def test_the_core_names_commands_only_as_mentions() -> None:
    spelled_out = [
        (name, line, text)
        for name, line, text in core_texts()
        if any(word in set(CommandName) for word in COMMAND_NAMED.findall(text))
    ]
    assert spelled_out == []
    # ... and its mentions are there to be spelled (the scan above sees the core's texts).
    assert spell(mention(CommandName.TRAIN, "NAME"), lambda m: m.command) == CommandName.TRAIN


# Telegram's own bot for bot tokens, named where the token is refused.
BOTFATHER_COMMANDS = {"mybots"}


@pytest.mark.parametrize("platform", ["discord", "telegram", "console"])
def test_an_adapters_own_texts_name_only_commands_its_platform_has(
    platform: str, world: CoreWorld
) -> None:
    registered = {
        "discord": discord_commands(world),
        "telegram": set(TELEGRAM_COMMANDS) | BOTFATHER_COMMANDS,
        "console": set(CONSOLE_COMMANDS),
    }[platform]
    package = Path(core_package.__file__).parent.parent / platform
    named_elsewhere = [
        (name, line, text)
        for name, line, text in texts_in(package.glob("*.py"))
        if not set(COMMAND_NAMED.findall(text)) <= registered
    ]
    assert named_elsewhere == []
