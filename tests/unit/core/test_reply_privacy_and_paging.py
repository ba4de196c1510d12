"""Which replies are for the asker only (the core marks them, every adapter obeys), the
order of facts and free text, and the pages long texts are cut into."""

from __future__ import annotations

from tests.fakes.core import CoreWorld
from tests.unit.core.test_service import trained_style
from tests.unit.core.test_style_management import ALICE, BOB_HERE, finished_image

from stylebot.bot.core.commands import (
    EraseMyData,
    ExportStyle,
    Imagine,
    ListStyles,
    OutputInfo,
    ShareStyle,
    ShowStatus,
    StyleInfo,
)
from stylebot.bot.core.paging import keep_last, pages
from stylebot.bot.core.replies import ErasureConfirmation, TextReply, is_private


async def test_replies_naming_private_things_are_marked_private(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await world.bot.handle(Imagine(ALICE, "a secret lighthouse", style="ink"))
    output_id = await finished_image(world)

    for command in (
        ListStyles(ALICE),
        StyleInfo(ALICE, "ink"),
        ShowStatus(ALICE),
        ExportStyle(ALICE, "ink"),
        OutputInfo(BOB_HERE, output_id),
        EraseMyData(ALICE),
    ):
        reply = await world.bot.handle(command)
        assert is_private(reply), (command, reply)
    # With nothing to show they stay private: what a command answers does not depend on data.
    assert is_private(await world.bot.handle(ListStyles(BOB_HERE)))
    assert is_private(await world.bot.handle(ShowStatus(BOB_HERE)))

    # What the group may see stays public: a queued image, a style shared with the group.
    assert not is_private(await world.bot.handle(Imagine(ALICE, "a boat", style="ink")))
    assert not is_private(await world.bot.handle(ShareStyle(ALICE, "ink")))


async def test_output_info_gives_the_facts_before_the_prompt(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    output_id = await finished_image(world)

    info = await world.bot.handle(OutputInfo(ALICE, output_id))

    assert isinstance(info, TextReply)
    lines = info.text.split("\n")
    assert lines[-1] == "prompt: a lighthouse"
    assert lines[0].startswith(f"output: {output_id}, made ")
    assert "seed: 9" in info.text.split("prompt:")[0]


async def test_the_erasure_question_comes_before_the_style_names(world: CoreWorld) -> None:
    for name in ("ink", "oil"):
        await trained_style(world, ALICE, name)

    question = await world.bot.handle(EraseMyData(ALICE))

    assert isinstance(question, ErasureConfirmation)
    *facts, names = question.text.split("\n")
    assert names == "Your styles: ink, oil"
    assert "ink" not in "\n".join(facts)
    assert "\n".join(facts).endswith("Confirm to go ahead.")


def test_pages_cut_between_lines_and_lose_nothing() -> None:
    lines = [f"- style-number-{n:03d} (ready, yours)" for n in range(120)]
    text = "Styles you can use:\n" + "\n".join(lines)

    cut = pages(text, 500)

    assert len(cut) > 1
    assert all(len(page) <= 500 for page in cut)
    assert "\n".join(cut) == text  # every line whole, on one page, in order


def test_a_line_longer_than_a_page_is_cut_at_spaces() -> None:
    words = " ".join(f"word{n}" for n in range(400))

    cut = pages(f"head\n{words}\ntail", 100)

    assert all(len(page) <= 100 for page in cut)
    assert cut[0].startswith("head\n")
    assert cut[-1].endswith("\ntail")
    assert " ".join(" ".join(cut).split()) == " ".join(f"head {words} tail".split())
    assert pages("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
    # Never between a backslash and what it escapes: "\\*" cut apart would be a live "*".
    escaped = "\\*" * 10
    assert pages(escaped, 5) == ["\\*\\*"] * 5


def test_keep_last_shortens_the_text_never_the_outcome() -> None:
    question = "Delete everything? " + "name, " * 1000
    outcome = "Erased: 130 style(s)."

    kept = keep_last(question, outcome, 4096)

    assert len(kept) == 4096
    assert kept.endswith("…\n\nErased: 130 style(s).")
    assert keep_last("short", outcome, 4096) == "short\n\nErased: 130 style(s)."
