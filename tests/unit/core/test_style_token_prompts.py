"""No prompt may name a style's token: the core refuses it in every command that
carries prompt text, with nothing queued and no quota used."""

from __future__ import annotations

import pytest
from tests.fakes.core import CoreWorld, person
from tests.fakes.safety import safety_world
from tests.unit.core.test_service import upload

from stylebot.bot.core.commands import ConfirmConsent, Imagine, RerollOutput, TrainStyle, VaryOutput
from stylebot.bot.core.model import Output
from stylebot.bot.core.replies import ErrorReply, JobQueued
from stylebot.queue.payloads import JobEvent, TrainingPreview, TrainResult, preview_output_id
from stylebot.style_tokens import TRAINING_TOKEN, style_embedding_token

ALICE = person("alice")
MALLORY = person("mallory")
VICTIM = style_embedding_token(1)

CRAFTED = [
    f"{VICTIM} a cat",
    f"{VICTIM.upper()} a cat",
    f"a cat{VICTIM}",
    "<sb<sb-x>-1> a cat",
    "< sb-1 > a cat",
    "<sb-\u200b1> a cat",
    f"{TRAINING_TOKEN} a cat",
    "<SB-Training> a cat",
]


def assert_refused(reply: object) -> None:
    assert isinstance(reply, ErrorReply), reply
    assert "style tokens" in reply.text
    assert "Nothing was queued" in reply.text


@pytest.mark.parametrize("text", CRAFTED)
async def test_a_prompt_or_negative_prompt_naming_a_token_is_refused_and_costs_nothing(
    text: str,
) -> None:
    safe = safety_world()
    assert_refused(await safe.bot.handle(Imagine(MALLORY, text)))
    assert_refused(await safe.bot.handle(Imagine(MALLORY, "a cat", negative_prompt=text)))
    assert safe.queue.generate_jobs == []
    assert safe.usage.events == []  # no quota, no rate-limit slot
    user = await safe.uow.users.get_or_create_user("discord", "mallory", "Mallory")
    assert await safe.uow.outputs.user_outputs(user.id) == []


async def test_prompts_with_other_angle_brackets_still_queue(world: CoreWorld) -> None:
    for prompt in ("a <b>bold</b> cat", "a cat <3", "sb-1 < 2 > 1"):
        assert isinstance(await world.bot.handle(Imagine(ALICE, prompt)), JobQueued), prompt


async def _textual_inversion_style_with_a_preview(world: CoreWorld) -> str:
    """Train a style whose run sent a preview (prompt: the training token and the
    trigger, as the worker renders it); returns the preview's output id."""
    await upload(world, ALICE, (1, 2, 3), (4, 5, 6))
    await world.bot.handle(ConfirmConsent(ALICE, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ALICE, "ink"))
    assert isinstance(queued, JobQueued)
    [train] = world.queue.train_jobs
    preview = TrainingPreview(
        output_id=preview_output_id(queued.job_id, 2),
        blob_key=await world.blobs.put(b"preview png"),
        prompt=f"{TRAINING_TOKEN} {train.trigger}",
        seed=1,
        steps=4,
        guidance=7.5,
        width=128,
        height=128,
    )
    await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "progress", step=2, total=4, preview=preview)
    )
    result = TrainResult("", 4, 0.1, 1.0, embedding_key=await world.blobs.put(b"embedding"))
    await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "finished", result=result.to_dict())
    )
    return preview.output_id


async def test_more_of_a_stored_image_whose_prompt_names_a_token_is_refused(
    world: CoreWorld,
) -> None:
    preview_id = await _textual_inversion_style_with_a_preview(world)
    assert await world.uow.outputs.get_output(preview_id) is not None
    # An image recorded before prompts were checked, its token in the negative prompt.
    first = await world.bot.handle(Imagine(ALICE, "a cat"))
    assert isinstance(first, JobQueued)
    [stored] = await world.uow.outputs.job_outputs(first.job_id)
    older = Output(
        id="0123456789ab",
        job_id=first.job_id,
        user_id=stored.user_id,
        prompt="a cat",
        negative_prompt=f"{VICTIM} blurry",
        seed=1,
        steps=stored.steps,
        guidance=stored.guidance,
        width=stored.width,
        height=stored.height,
        created_at=stored.created_at,
    )
    await world.uow.outputs.add_outputs([older])
    queued_before = len(world.queue.generate_jobs)

    for output_id in (preview_id, older.id):
        assert_refused(await world.bot.handle(RerollOutput(ALICE, output_id)))
        assert_refused(await world.bot.handle(VaryOutput(ALICE, output_id)))
    assert len(world.queue.generate_jobs) == queued_before
