"""/style export: the kohya-layout file the worker made, what the train job tells the
worker for its metadata, and styles trained before export files existed."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, person
from tests.unit.core.test_service import upload

from stylebot.bot.core.commands import ConfirmConsent, DeleteStyle, ExportStyle, TrainStyle
from stylebot.bot.core.replies import ErrorReply, FileReply, JobQueued, TextReply
from stylebot.bot.core.training import spdx_licence
from stylebot.queue.payloads import JobEvent, TrainResult

ALICE = person("alice")
BOB = person("bob")


async def train(world: CoreWorld, who=ALICE, name: str = "ink", licence: str = "own-work") -> str:  # type: ignore[no-untyped-def]
    """Upload, consent and queue a training; returns the job id."""
    await upload(world, who, (10, 20, 30), (40, 50, 60))
    await world.bot.handle(ConfirmConsent(who, licence, rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(who, name))
    assert isinstance(queued, JobQueued)
    return queued.job_id


async def finish(
    world: CoreWorld, job_id: str, *, export: bytes | None, embedding: bytes | None = None
) -> None:
    result = TrainResult(
        lora_key=await world.blobs.put(b"diffusers-layout weights " + job_id.encode()),
        steps=10,
        final_loss=0.1,
        seconds=1.0,
        export_key=await world.blobs.put(export) if export is not None else None,
        embedding_key=await world.blobs.put(embedding) if embedding is not None else None,
    )
    await world.bot.handle_event(JobEvent(job_id, "train", "finished", result=result.to_dict()))


@pytest.mark.parametrize(
    ("licence", "expression"),
    [
        ("own-work", "LicenseRef-stylebot-own-work"),
        ("licensed", "LicenseRef-stylebot-licensed"),
        ("CC-BY-SA-4.0", "CC-BY-SA-4.0"),
    ],
)
async def test_the_train_job_carries_what_the_export_metadata_needs(
    world: CoreWorld, licence: str, expression: str
) -> None:
    await train(world, licence=licence)
    job = world.queue.train_jobs[-1]
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    style = await world.uow.styles.find_style(user.id, "ink")
    assert style is not None
    assert job.style_name == "ink"
    assert job.licence == expression == spdx_licence(licence)
    assert job.consent_id == style.consent_id
    assert job.base_model == style.base_model == "tiny"


async def test_export_returns_the_kohya_file_and_says_where_it_loads(world: CoreWorld) -> None:
    job_id = await train(world)
    await finish(world, job_id, export=b"kohya-layout file")

    reply = await world.bot.handle(ExportStyle(ALICE, "ink"))

    assert isinstance(reply, FileReply)
    assert reply.data == b"kohya-layout file"
    assert reply.filename == "ink.safetensors"
    for place in ("AUTOMATIC1111", "ComfyUI", "diffusers", "tiny", "sbt ink style"):
        assert place in reply.text
    assert "embedding" not in reply.text


async def test_a_style_trained_both_ways_exports_its_lora_and_says_the_embedding_stays(
    world: CoreWorld,
) -> None:
    job_id = await train(world)
    await finish(world, job_id, export=b"kohya-layout file", embedding=b"embedding file")

    reply = await world.bot.handle(ExportStyle(ALICE, "ink"))

    assert isinstance(reply, FileReply)
    assert reply.data == b"kohya-layout file"
    assert "holds the LoRA alone" in reply.text


async def test_a_style_trained_before_export_files_exports_its_diffusers_weights_with_a_note(
    world: CoreWorld,
) -> None:
    job_id = await train(world)
    await finish(world, job_id, export=None)

    reply = await world.bot.handle(ExportStyle(ALICE, "ink"))

    assert isinstance(reply, FileReply)
    assert reply.data.startswith(b"diffusers-layout weights")
    assert reply.filename == "ink.safetensors"
    assert "trained before" in reply.text
    assert "train it again" in reply.text


async def test_a_style_still_training_has_nothing_to_export(world: CoreWorld) -> None:
    await train(world)
    blobs_before = dict(world.blobs.blobs)

    reply = await world.bot.handle(ExportStyle(ALICE, "ink"))

    assert isinstance(reply, ErrorReply)
    assert "no trained weights" in reply.text
    assert world.blobs.blobs == blobs_before


async def test_someone_elses_style_is_not_exported(world: CoreWorld) -> None:
    job_id = await train(world)
    await finish(world, job_id, export=b"kohya-layout file")

    reply = await world.bot.handle(ExportStyle(BOB, "ink"))

    assert isinstance(reply, ErrorReply)
    assert "no style named ink" in reply.text


async def test_deleting_the_style_deletes_its_export_file(world: CoreWorld) -> None:
    job_id = await train(world)
    await finish(world, job_id, export=b"kohya-layout file")
    assert len(world.blobs.blobs) == 4  # two uploads, the weights, the export

    reply = await world.bot.handle(DeleteStyle(ALICE, "ink"))

    assert isinstance(reply, TextReply)
    assert world.blobs.blobs == {}


async def test_an_export_file_another_style_shares_is_kept(world: CoreWorld) -> None:
    # Blobs are content-addressed: two styles can hold byte-identical exports.
    first = await train(world, ALICE, "ink")
    await finish(world, first, export=b"same bytes")
    second = await train(world, BOB, "also")
    await finish(world, second, export=b"same bytes")

    await world.bot.handle(DeleteStyle(ALICE, "ink"))

    reply = await world.bot.handle(ExportStyle(BOB, "also"))
    assert isinstance(reply, FileReply)
    assert reply.data == b"same bytes"
