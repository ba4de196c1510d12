"""What a user hears once the queue is back: no replay of stale progress, and a
word when a run was taken up again after its worker stopped (issue 20)."""

from __future__ import annotations

from datetime import timedelta

from tests.fakes.core import CoreWorld, SteppingClock, person
from tests.unit.core.test_service import upload

from stylebot.bot.core.commands import ConfirmConsent, Imagine, TrainStyle
from stylebot.bot.core.replies import JobProgress, JobQueued, TextReply
from stylebot.queue.payloads import JobEvent

ADA = person("ada")


def sent_ago(world: CoreWorld, age: timedelta) -> float:
    clock = world.bot.deps.clock
    assert isinstance(clock, SteppingClock)
    return (clock.current - age).timestamp()


async def test_progress_older_than_the_limit_is_recorded_but_not_sent(world: CoreWorld) -> None:
    queued = await world.bot.handle(Imagine(ADA, "a quiet harbour", steps=8))
    assert isinstance(queued, JobQueued)
    stale = JobEvent(
        queued.job_id,
        "generate",
        "progress",
        step=3,
        total=8,
        eta_s=6660,
        sent_at=sent_ago(world, timedelta(hours=1)),  # replayed after a restart
    )
    assert await world.bot.handle_event(stale) == []
    job = await world.uow.jobs.get_job(queued.job_id)
    assert job is not None
    assert job.step == 3

    fresh = JobEvent(
        queued.job_id,
        "generate",
        "progress",
        step=4,
        total=8,
        sent_at=sent_ago(world, timedelta(seconds=2)),
    )
    (note,) = await world.bot.handle_event(fresh)
    assert isinstance(note.reply, JobProgress)
    assert note.reply.step == 4


async def test_a_training_taken_up_again_after_its_worker_stopped_is_told(
    world: CoreWorld,
) -> None:
    await upload(world, ADA, (10, 20, 30), (40, 50, 60))
    await world.bot.handle(ConfirmConsent(ADA, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ADA, "ink"))
    assert isinstance(queued, JobQueued)
    job_id = queued.job_id
    assert await world.bot.handle_event(JobEvent(job_id, "train", "started", total=10)) == []
    await world.bot.handle_event(JobEvent(job_id, "train", "progress", step=6, total=10))

    # The worker died; another resumes from the checkpoint at step 5.
    (note,) = await world.bot.handle_event(JobEvent(job_id, "train", "started", step=5, total=10))
    assert isinstance(note.reply, TextReply)
    assert note.reply.text == (
        "Training ink resumed from step 5/10: the worker running it had stopped."
    )
    job = await world.uow.jobs.get_job(job_id)
    assert job is not None
    assert job.step == 5
