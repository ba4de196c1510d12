"""Consent, then training, as one core command (issue 15, point 4): every platform sends
ConfirmConsent with the style's name, and the core records consent and starts training,
or says which of the two it refused."""

from __future__ import annotations

from tests.fakes.core import CoreWorld, person
from tests.unit.core.test_service import upload

from stylebot.bot.core.commands import ConfirmConsent
from stylebot.bot.core.consent import PeopleAnswer
from stylebot.bot.core.replies import ErrorReply, JobQueued, TextReply, TrainingRefused

ALICE = person("alice")


async def consented(world: CoreWorld) -> bool:
    """Whether consent is recorded for the waiting images (not yet used by a training)."""
    user = await world.uow.users.get_or_create_user("discord", "alice", "Alice")
    return await world.uow.consents.latest_consent(user.id) is not None


async def test_one_command_records_consent_and_queues_the_training(world: CoreWorld) -> None:
    await upload(world, ALICE, (10, 20, 30))
    command = ConfirmConsent.answered(ALICE, "own-work", PeopleAnswer.NONE, "ink")

    reply = await world.bot.handle(command)

    # Training starts only on recorded consent, which the style now holds.
    assert isinstance(reply, JobQueued), reply
    assert len(world.queue.train_jobs) == 1
    assert not await consented(world)  # no consent is left waiting for a training


async def test_a_refused_name_keeps_the_consent_and_says_training_was_refused(
    world: CoreWorld,
) -> None:
    await upload(world, ALICE, (10, 20, 30))

    reply = await world.bot.handle(
        ConfirmConsent.answered(ALICE, "own-work", PeopleAnswer.NONE, "Not A Name!")
    )

    assert isinstance(reply, TrainingRefused), reply
    assert await consented(world)
    assert world.queue.train_jobs == []


async def test_a_refused_consent_starts_nothing(world: CoreWorld) -> None:
    await upload(world, ALICE, (10, 20, 30))

    reply = await world.bot.handle(
        ConfirmConsent.answered(ALICE, "own-work", PeopleAnswer.NOT_AGREED, "ink")
    )

    assert isinstance(reply, ErrorReply)
    assert not isinstance(reply, TrainingRefused)
    assert not await consented(world)
    assert world.queue.train_jobs == []


async def test_without_a_name_it_only_records_consent(world: CoreWorld) -> None:
    await upload(world, ALICE, (10, 20, 30))

    reply = await world.bot.handle(ConfirmConsent.answered(ALICE, "own-work", None, None))

    assert isinstance(reply, TextReply)
    assert await consented(world)
    assert world.queue.train_jobs == []


async def test_the_variant_chosen_before_consent_goes_with_the_job(world: CoreWorld) -> None:
    # `/train ink variant:lokr` typed while the consent question was open: the platform
    # hands both to the core with the confirmation.
    await upload(world, ALICE, (10, 20, 30))
    command = ConfirmConsent.answered(ALICE, "own-work", PeopleAnswer.NONE, "ink", "lokr")

    reply = await world.bot.handle(command)

    assert isinstance(reply, JobQueued), reply
    assert [job.settings.lora_variant for job in world.queue.train_jobs] == ["lokr"]


async def test_an_unknown_variant_keeps_the_consent_and_says_why(world: CoreWorld) -> None:
    await upload(world, ALICE, (10, 20, 30))
    command = ConfirmConsent.answered(ALICE, "own-work", PeopleAnswer.NONE, "ink", "loha")

    reply = await world.bot.handle(command)

    assert isinstance(reply, TrainingRefused), reply
    assert "variant:loha" in reply.text
    assert await consented(world)
    assert world.queue.train_jobs == []
