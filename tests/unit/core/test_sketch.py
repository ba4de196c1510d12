"""/sketch's rules in the core, on in-memory fakes: a plain reply when no ControlNet is
configured, the picture an upload like a restyle's (confirmation, ledger), queued with
what it follows and how closely, a re-roll following it again, and /verify naming it."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, core_world, png
from tests.unit.core.test_restyle import ALICE, deliver, image_use_entries, picture
from tests.unit.core.test_service import trained_style

from stylebot.bot.core.commands import IncomingFile, RerollOutput, Restyle, Verify
from stylebot.bot.core.errors import CommandSyntaxError
from stylebot.bot.core.grammar import parse_restyle
from stylebot.bot.core.mentions import CommandName, mentions_in
from stylebot.bot.core.replies import ErrorReply, JobQueued, VerifyReport
from stylebot.bot.core.restyle import SKETCH_STRENGTH


@pytest.fixture
def sketching() -> CoreWorld:
    return core_world(sketch_follows=("edges",))


def sketch(
    data: bytes, prompt: str = "a castle", follow: str = "edges", **options: object
) -> Restyle:
    return Restyle(
        ALICE,
        IncomingFile("sketch.png", data),
        "ink",
        prompt=prompt,
        follow=follow,
        **options,  # type: ignore[arg-type]
    )


async def test_without_a_controlnet_the_reply_says_so_and_nothing_is_queued(
    world: CoreWorld,
) -> None:
    await trained_style(world)
    refused = await world.bot.handle(sketch(picture(), rights_confirmed=True))
    assert isinstance(refused, ErrorReply)
    assert "not set up on this bot" in refused.text
    assert world.queue.generate_jobs == []


async def test_depth_is_refused_plainly_when_only_edges_are_configured(
    sketching: CoreWorld,
) -> None:
    await trained_style(sketching)
    command = parse_restyle("style:ink follow:depth a castle", "sketch").command(
        ALICE, IncomingFile("s.png", picture()), ["a castle"]
    )
    refused = await sketching.bot.handle(command)
    assert isinstance(refused, ErrorReply)
    assert "can't follow the depth of a picture; use follow:edges" in refused.text


async def test_a_sketch_is_queued_following_its_edges_and_the_ledger_records_the_picture(
    sketching: CoreWorld,
) -> None:
    await trained_style(sketching)
    asked = await sketching.bot.handle(sketch(picture()))
    assert isinstance(asked, ErrorReply)
    assert [m.command for m in mentions_in(asked.text)] == [CommandName.SKETCH]
    queued = await sketching.bot.handle(sketch(picture(), rights_confirmed=True))
    assert isinstance(queued, JobQueued), queued
    assert "Sketching a castle, following the edges of your picture" in queued.text
    [job] = sketching.queue.generate_jobs
    assert (job.follow, job.strength, job.prompt) == ("edges", SKETCH_STRENGTH, "a castle")
    assert job.source_key is not None
    assert (job.width, job.height) == (512, 256)
    [entry] = await image_use_entries(sketching)
    assert entry["job_id"] == job.job_id
    [output] = await sketching.uow.outputs.job_outputs(job.job_id)
    assert (output.follow, output.source_key) == ("edges", job.source_key)

    # /verify names what it followed; a re-roll follows the same picture again.
    sketching.watermark.ids[(4, 5, 6)] = job.output_ids[0]
    await deliver(sketching, job, png((4, 5, 6), size=256))
    verified = await sketching.bot.handle(Verify(ALICE, IncomingFile("s.png", png((4, 5, 6), 256))))
    assert isinstance(verified, VerifyReport)
    assert f"SHA-256 {job.source_key[:16]}… (its edges followed, weight 1)" in verified.text
    await sketching.bot.handle(RerollOutput(ALICE, job.output_ids[0]))
    reroll = sketching.queue.generate_jobs[-1]
    assert (reroll.follow, reroll.source_key, reroll.strength) == ("edges", job.source_key, 1.0)


async def test_depth_is_queued_where_its_controlnet_is_configured() -> None:
    both = core_world(sketch_follows=("edges", "depth"))
    await trained_style(both)
    queued = await both.bot.handle(sketch(picture(), rights_confirmed=True, follow="depth"))
    assert isinstance(queued, JobQueued), queued
    assert "following the depth of your picture" in queued.text
    assert [job.follow for job in both.queue.generate_jobs] == ["depth"]


async def test_a_sketch_needs_a_prompt_and_takes_no_region(sketching: CoreWorld) -> None:
    await trained_style(sketching)
    no_prompt = await sketching.bot.handle(sketch(picture(), prompt=" ", rights_confirmed=True))
    assert isinstance(no_prompt, ErrorReply)
    assert "Say what to draw along the sketch" in no_prompt.text
    boxed = await sketching.bot.handle(
        sketch(picture(), rights_confirmed=True, region=(0.0, 0.0, 50.0, 50.0))
    )
    assert isinstance(boxed, ErrorReply)
    assert "no extend, region or mask" in boxed.text
    assert sketching.queue.generate_jobs == []


def test_the_grammar_reads_follow_and_refuses_other_kinds() -> None:
    assert parse_restyle("style:ink a castle", "sketch").follow == "edges"
    assert parse_restyle("style:ink follow:EDGES strength:0.5 x", "sketch").strength == 0.5
    assert parse_restyle("style:ink a castle", "restyle").follow is None
    with pytest.raises(CommandSyntaxError, match="follow is edges or depth"):
        parse_restyle("style:ink follow:pose a castle", "sketch")
