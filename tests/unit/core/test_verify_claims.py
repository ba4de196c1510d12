"""What /verify says about who made a picture, and to whom it shows how.

The maker is named by a stable handle and the display name they had when the image was
made, never a later one; a private output (made in a direct message, or with a private
style) shows its prompt and style to its maker only.
"""

from __future__ import annotations

import dataclasses

from tests.fakes.core import person
from tests.support.verify_world import check, deliver, stored_picture, verify_world
from tests.unit.provenance.test_watermark import scene

from stylebot.bot.core.commands import ListStyles, OutputInfo
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import TextReply, VerifyVerdict

ALICE = person("alice")
BOB = person("bob")
ALICE_IN_DM = person("alice", server=None)


async def test_a_renamed_maker_is_named_as_they_were_when_it_was_made() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=1))
    # Alice renames herself; the bot sees the new name on her next command.
    await world.bot.handle(ListStyles(dataclasses.replace(ALICE, display_name="Alice Smith")))
    user = await world.bot.deps.uow.users.find_user("discord", "alice")
    assert user is not None
    assert user.display_name == "Alice Smith"

    report = await check(world, BOB, await stored_picture(world, output_id))
    assert report.verdict is VerifyVerdict.MADE
    assert "by: <@alice>, named 'Alice' when it was made" in report.text
    assert "Alice Smith" not in report.text


async def test_a_telegram_maker_is_named_by_the_at_name_they_had_without_their_id() -> None:
    world = verify_world()
    ada = Requester("telegram", "5678", "Ada L", chat_id="-100", server_id="-100", username="ada")
    output_id = await deliver(world, ada, scene(512, 512, seed=2))
    await world.bot.handle(ListStyles(dataclasses.replace(ada, username="ada_new")))
    report = await check(world, BOB, await stored_picture(world, output_id))
    assert "by: @ada, named 'Ada L' when it was made" in report.text
    assert "ada_new" not in report.text
    assert "5678" not in report.text, "an id next to a name only helps to track them"


async def test_a_dm_output_shows_its_prompt_to_its_maker_only() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE_IN_DM, scene(512, 512, seed=3), "my secret plan")
    picture = await stored_picture(world, output_id)

    theirs = await check(world, BOB, picture)
    assert theirs.verdict is VerifyVerdict.MADE
    assert theirs.output is None, "the record is not handed to adapters for others"
    assert "<@alice>" in theirs.text
    assert "made: 2026-11-22" in theirs.text
    assert "secret" not in theirs.text
    assert "style:" not in theirs.text
    assert "shown only to its maker" in theirs.text

    mine = await check(world, ALICE, picture)
    assert mine.output is not None
    assert "prompt: my secret plan" in mine.text
    assert "style: none (base model)" in mine.text


async def test_a_server_output_without_a_private_style_shows_its_record_to_anyone() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=5), "a lighthouse at dawn")
    report = await check(world, BOB, await stored_picture(world, output_id))
    assert report.output is not None
    assert "prompt: a lighthouse at dawn" in report.text


async def test_the_output_info_button_keeps_the_same_secret() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE_IN_DM, scene(512, 512, seed=6), "my secret plan")
    theirs = await world.bot.handle(OutputInfo(BOB, output_id))
    assert isinstance(theirs, TextReply)
    assert "secret" not in theirs.text
    mine = await world.bot.handle(OutputInfo(ALICE_IN_DM, output_id))
    assert isinstance(mine, TextReply)
    assert "prompt: my secret plan" in mine.text


async def test_an_output_recorded_before_makers_were_kept_uses_its_jobs_record() -> None:
    """An older record has no maker name: the job that asked for it still holds the name
    Alice had then, and /verify says where the name comes from."""
    world = verify_world()
    output_id = await deliver(world, ALICE, scene(512, 512, seed=7), "a lighthouse")
    repo = world.bot.deps.uow
    record = await repo.outputs.get_output(output_id)
    assert record is not None
    assert record.maker_name == "Alice"
    # The record as migration 0009 leaves an older one: no maker, privacy unknown.
    await repo.outputs.delete_output(output_id)
    await repo.outputs.add_outputs(
        [dataclasses.replace(record, maker_name=None, maker_username=None, made_in_private=None)]
    )
    await world.bot.handle(ListStyles(dataclasses.replace(ALICE, display_name="Alice Smith")))

    report = await check(world, BOB, await stored_picture(world, output_id))
    assert report.verdict is VerifyVerdict.MADE, report.text
    assert "by: <@alice>, named 'Alice' when they asked for it (from the job's" in report.text
    assert "Alice Smith" not in report.text
    # Asked for in a server with no style: its record is public, as it always was.
    assert "prompt: a lighthouse" in report.text


async def test_an_older_dm_output_stays_private() -> None:
    world = verify_world()
    output_id = await deliver(world, ALICE_IN_DM, scene(512, 512, seed=8), "my secret plan")
    repo = world.bot.deps.uow
    record = await repo.outputs.get_output(output_id)
    assert record is not None
    await repo.outputs.delete_output(output_id)
    await repo.outputs.add_outputs(
        [dataclasses.replace(record, maker_name=None, made_in_private=None)]
    )
    report = await check(world, BOB, await stored_picture(world, output_id))
    assert "secret" not in report.text
