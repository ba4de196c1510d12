"""Sharing, deleting, exporting, cancelling and re-using outputs, on in-memory fakes."""

from __future__ import annotations

import dataclasses

from tests.fakes.core import CoreWorld, person, png
from tests.unit.core.test_service import trained_style, upload

from stylebot.bot.core.commands import (
    CancelJob,
    ConfirmConsent,
    DeleteOutput,
    DeleteStyle,
    ExportStyle,
    Imagine,
    IncomingFile,
    OutputInfo,
    RerollOutput,
    ShareStyle,
    StyleInfo,
    TrainStyle,
    UnshareStyle,
    UploadImages,
    UsableStyles,
    VaryOutput,
)
from stylebot.bot.core.model import JobStatus, StyleStatus, Visibility
from stylebot.bot.core.replies import (
    ErrorReply,
    FileReply,
    JobFinished,
    JobQueued,
    StyleChoices,
    TextReply,
)
from stylebot.queue.payloads import (
    GeneratedImage,
    GenerateResult,
    JobEvent,
    TrainedBase,
    TrainResult,
)

ALICE = person("alice", server="guild-1")
BOB_HERE = person("bob", server="guild-1")
BOB_ELSEWHERE = person("bob", server="guild-2")
BOB_IN_DM = person("bob", server=None)


async def finished_image(world: CoreWorld, who=ALICE, style: str | None = "ink") -> str:  # type: ignore[no-untyped-def]
    """Generate one image and let the 'worker' finish it; returns its output id."""
    await world.bot.handle(Imagine(who, "a lighthouse", style=style, seed=9))
    job = world.queue.generate_jobs[-1]
    key = await world.blobs.put(b"png of " + job.output_ids[0].encode())
    result = GenerateResult((GeneratedImage(job.output_ids[0], key, 9),), 1.0)
    await world.bot.handle_event(
        JobEvent(job.job_id, "generate", "finished", result=result.to_dict())
    )
    return job.output_ids[0]


async def test_sharing_with_a_server_lets_its_members_use_the_style(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    assert isinstance(await world.bot.handle(Imagine(BOB_HERE, "x", style="ink")), ErrorReply)

    shared = await world.bot.handle(ShareStyle(ALICE, "ink"))
    assert isinstance(shared, TextReply)
    assert isinstance(await world.bot.handle(Imagine(BOB_HERE, "x", style="ink")), JobQueued)
    assert isinstance(await world.bot.handle(Imagine(BOB_ELSEWHERE, "x", style="ink")), ErrorReply)
    assert isinstance(await world.bot.handle(Imagine(BOB_IN_DM, "x", style="ink")), ErrorReply)

    await world.bot.handle(UnshareStyle(ALICE, "ink"))
    assert isinstance(await world.bot.handle(Imagine(BOB_HERE, "x", style="ink")), ErrorReply)


async def test_public_styles_work_everywhere_and_server_sharing_needs_a_server(
    world: CoreWorld,
) -> None:
    await trained_style(world, person("alice", server=None), "ink")
    in_dm = await world.bot.handle(ShareStyle(person("alice", server=None), "ink"))
    assert isinstance(in_dm, ErrorReply)
    assert "inside the server" in in_dm.text
    await world.bot.handle(ShareStyle(ALICE, "ink", public=True))
    assert isinstance(await world.bot.handle(Imagine(BOB_IN_DM, "x", style="ink")), JobQueued)
    info = await world.bot.handle(StyleInfo(BOB_ELSEWHERE, "ink"))
    assert isinstance(info, TextReply)
    assert "public" in info.text
    assert "owner: Alice" in info.text


async def test_only_the_owner_shares_deletes_or_exports(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await world.bot.handle(ShareStyle(ALICE, "ink"))
    for command in (
        ShareStyle(BOB_HERE, "ink", public=True),
        UnshareStyle(BOB_HERE, "ink"),
        DeleteStyle(BOB_HERE, "ink"),
        ExportStyle(BOB_HERE, "ink"),
    ):
        reply = await world.bot.handle(command)
        assert isinstance(reply, ErrorReply), command
        assert "no style named ink" in reply.text
    alice = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    style = await world.uow.styles.find_style(alice.id, "ink")
    assert style is not None
    assert style.visibility is Visibility.SERVER


async def test_export_gives_the_owner_the_weights(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    reply = await world.bot.handle(ExportStyle(ALICE, "ink"))
    assert isinstance(reply, FileReply)
    assert reply.filename == "ink.safetensors"
    assert reply.data == b"lora-weights"


async def test_deleting_a_style_deletes_its_images_weights_and_outputs(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    output_id = await finished_image(world)
    assert len(world.blobs.blobs) == 4  # two uploads, the weights, one image

    reply = await world.bot.handle(DeleteStyle(ALICE, "ink"))
    assert isinstance(reply, TextReply)
    assert "2 training image(s)" in reply.text
    assert world.blobs.blobs == {}
    assert await world.uow.outputs.get_output(output_id) is None
    again = await world.bot.handle(Imagine(ALICE, "x", style="ink"))
    assert isinstance(again, ErrorReply)


async def test_deleting_a_style_keeps_an_image_another_style_also_uses(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await trained_style(world, BOB_HERE, "also")  # uploads the same two pictures
    await world.bot.handle(DeleteStyle(ALICE, "ink"))
    bob = await world.uow.users.get_or_create_user("discord", "bob", "Bob")
    style = await world.uow.styles.find_style(bob.id, "also")
    assert style is not None
    for item in await world.uow.uploads.style_uploads(style.id):
        assert await world.blobs.exists(item.blob_key)


async def test_deleting_a_style_while_it_trains_cancels_the_job(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    from stylebot.bot.core.commands import ConfirmConsent, TrainStyle

    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    await world.bot.handle(DeleteStyle(ALICE, "ink"))
    assert world.queue.cancelled == [queued.job_id]
    job = await world.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.status is JobStatus.CANCELLED
    # A late result from the worker changes nothing and tells nobody.
    late = JobEvent(queued.job_id, "train", "progress", step=5, total=10)
    assert await world.bot.handle_event(late) == []


async def test_cancel_stops_the_users_newest_job_only(world: CoreWorld) -> None:
    await world.bot.handle(Imagine(BOB_HERE, "bob's"))
    first = await world.bot.handle(Imagine(ALICE, "first"))
    second = await world.bot.handle(Imagine(ALICE, "second"))
    assert isinstance(first, JobQueued)
    assert isinstance(second, JobQueued)
    reply = await world.bot.handle(CancelJob(ALICE))
    assert isinstance(reply, JobFinished)
    assert reply.job_id == second.job_id
    assert not reply.ok
    assert world.queue.cancelled == [second.job_id]
    nothing = await world.bot.handle(CancelJob(person("carol")))
    assert isinstance(nothing, ErrorReply)
    someone_elses = await world.bot.handle(CancelJob(BOB_HERE, job_id=first.job_id))
    assert isinstance(someone_elses, ErrorReply)


async def test_cancelling_training_marks_the_style_failed(world: CoreWorld) -> None:
    await upload(world, ALICE, (1, 2, 3))
    from stylebot.bot.core.commands import ConfirmConsent, TrainStyle

    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    await world.bot.handle(TrainStyle(ALICE, "ink"))
    await world.bot.handle(CancelJob(ALICE))
    alice = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    style = await world.uow.styles.find_style(alice.id, "ink")
    assert style is not None
    assert style.status is StyleStatus.FAILED


async def test_autocomplete_lists_only_ready_styles_the_user_may_use(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    await trained_style(world, BOB_HERE, "inkwell")
    mine = await world.bot.handle(UsableStyles(ALICE, prefix="IN"))
    assert isinstance(mine, StyleChoices)
    assert mine.names == ("ink",)  # bob's is private
    await world.bot.handle(ShareStyle(BOB_HERE, "inkwell"))
    here = await world.bot.handle(UsableStyles(ALICE, prefix="ink"))
    assert isinstance(here, StyleChoices)
    assert here.names == ("ink", "inkwell")  # own first
    elsewhere = await world.bot.handle(UsableStyles(person("alice", server="guild-2")))
    assert isinstance(elsewhere, StyleChoices)
    assert elsewhere.names == ("ink",)


async def test_reroll_uses_a_new_seed_and_vary_keeps_it(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    output_id = await finished_image(world)
    reroll = await world.bot.handle(RerollOutput(ALICE, output_id))
    vary = await world.bot.handle(VaryOutput(ALICE, output_id))
    assert isinstance(reroll, JobQueued)
    assert isinstance(vary, JobQueued)
    original, rerolled, varied = world.queue.generate_jobs
    assert rerolled.prompt == original.prompt
    assert rerolled.lora_key == original.lora_key
    assert rerolled.variation_seed is None
    assert varied.seed == original.seed
    assert varied.variation_seed is not None
    assert 0 < varied.variation_strength < 0.5


async def test_reroll_of_someone_elses_private_style_is_refused(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    output_id = await finished_image(world)
    reply = await world.bot.handle(RerollOutput(BOB_HERE, output_id))
    assert isinstance(reply, ErrorReply)
    assert len(world.queue.generate_jobs) == 1


async def test_output_info_and_delete(world: CoreWorld) -> None:
    await trained_style(world, ALICE, "ink")
    output_id = await finished_image(world)
    info = await world.bot.handle(OutputInfo(ALICE, output_id))
    assert isinstance(info, TextReply)
    assert "prompt: a lighthouse" in info.text
    assert "seed: 9" in info.text
    # Made with her private style: as /verify, the prompt and style are hers alone.
    theirs = await world.bot.handle(OutputInfo(BOB_HERE, output_id))
    assert isinstance(theirs, TextReply)
    assert "a lighthouse" not in theirs.text
    assert "ink" not in theirs.text

    refused = await world.bot.handle(DeleteOutput(BOB_HERE, output_id))
    assert isinstance(refused, ErrorReply)
    assert await world.uow.outputs.get_output(output_id) is not None
    deleted = await world.bot.handle(DeleteOutput(ALICE, output_id))
    assert isinstance(deleted, TextReply)
    assert await world.uow.outputs.get_output(output_id) is None
    gone = await world.bot.handle(RerollOutput(ALICE, output_id))
    assert isinstance(gone, ErrorReply)


async def test_only_ones_own_posts_can_be_added(world: CoreWorld) -> None:
    files = (IncomingFile("a.png", png()),)
    refused = await world.bot.handle(UploadImages(ALICE, files, posted_by="bob"))
    assert isinstance(refused, ErrorReply)
    assert world.blobs.blobs == {}
    accepted = await world.bot.handle(UploadImages(ALICE, files, posted_by="alice"))
    assert not isinstance(accepted, ErrorReply)


async def test_queued_jobs_are_limited_per_user_and_per_server(world: CoreWorld) -> None:
    world.bot.policy = dataclasses.replace(
        world.bot.policy, max_queued_per_user=2, max_queued_per_server=3
    )
    for _ in range(2):
        assert isinstance(await world.bot.handle(Imagine(ALICE, "a cat")), JobQueued)
    full = await world.bot.handle(Imagine(ALICE, "one more"))
    assert isinstance(full, ErrorReply)
    assert "limit is 2" in full.text
    assert isinstance(await world.bot.handle(Imagine(BOB_HERE, "bob's")), JobQueued)
    server_full = await world.bot.handle(Imagine(person("carol", server="guild-1"), "x"))
    assert isinstance(server_full, ErrorReply)
    assert "This server" in server_full.text
    # Another server, and a direct message, are not this server's queue.
    assert isinstance(await world.bot.handle(Imagine(BOB_ELSEWHERE, "x")), JobQueued)
    assert len(world.queue.generate_jobs) == 4
    await world.bot.handle(CancelJob(ALICE))
    assert isinstance(await world.bot.handle(Imagine(ALICE, "now")), JobQueued)


FLUX_DEV = TrainedBase(
    "FLUX.1-dev",
    "flux-dev",
    "",
    "FLUX.1 [dev] Non-Commercial License",
    "https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/LICENSE.md",
)


async def test_style_info_and_export_name_the_base_model_the_worker_trained_on(
    world: CoreWorld,
) -> None:
    await trained_style(world, ALICE, "old")  # a worker that did not say its base
    old = await world.bot.handle(StyleInfo(ALICE, "old"))
    assert isinstance(old, TextReply)
    assert "base model: " in old.text
    assert "licence:" not in old.text

    await upload(world, ALICE, (7, 8, 9))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    result = TrainResult(
        lora_key=await world.blobs.put(b"flux-lora"),
        steps=10,
        final_loss=0.1,
        seconds=1.0,
        export_key=await world.blobs.put(b"flux-export"),
        base=FLUX_DEV,
    )
    await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    )

    info = await world.bot.handle(StyleInfo(ALICE, "ink"))
    assert isinstance(info, TextReply)
    assert f"(FLUX.1 [dev]), licence: {FLUX_DEV.licence} ({FLUX_DEV.licence_url})" in info.text
    exported = await world.bot.handle(ExportStyle(ALICE, "ink"))
    assert isinstance(exported, FileReply)
    assert FLUX_DEV.licence in exported.text
