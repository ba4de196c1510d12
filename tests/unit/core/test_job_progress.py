"""Training progress as users read it, and the queue positions /status gives."""

from __future__ import annotations

import re

from tests.fakes.core import CoreWorld, person
from tests.unit.core.test_service import upload

from stylebot.bot.core.commands import ConfirmConsent, Imagine, ShowStatus, TrainStyle
from stylebot.bot.core.events import time_left_text
from stylebot.bot.core.model import JobStatus
from stylebot.bot.core.replies import JobProgress, JobQueued, TextReply
from stylebot.queue.payloads import JobEvent

ADA = person("ada")
BEA = person("bea")


def test_time_left_reads_as_a_person_would_say_it() -> None:
    assert time_left_text(3) == "a few seconds left"
    assert time_left_text(9.4) == "a few seconds left"
    assert time_left_text(11) == "about 10 s left"
    assert time_left_text(42) == "about 40 s left"
    assert time_left_text(118) == "about 2 min left"
    assert time_left_text(3600) == "about 1 h left"
    assert time_left_text(3 * 3600 + 20 * 60) == "about 3 h 20 min left"


async def _positions(world: CoreWorld, *who: object) -> dict[str, int]:
    positions: dict[str, int] = {}
    for requester in who:
        status = await world.bot.handle(ShowStatus(requester))  # type: ignore[arg-type]
        assert isinstance(status, TextReply)
        for job_id, place in re.findall(r"(\S+): queued \(position (\d+) ", status.text):
            positions[job_id] = int(place)
    return positions


async def test_a_later_user_s_job_is_placed_between_an_earlier_burst(world: CoreWorld) -> None:
    ada = [await world.bot.handle(Imagine(ADA, f"boat {i}")) for i in range(3)]
    bea = await world.bot.handle(Imagine(BEA, "a lighthouse"))
    assert all(isinstance(reply, JobQueued) for reply in [*ada, bea])
    positions = await _positions(world, ADA, BEA)
    assert [positions[reply.job_id] for reply in ada] == [1, 3, 4]  # type: ignore[union-attr]
    assert positions[bea.job_id] == 2  # type: ignore[union-attr]


async def test_a_running_job_is_its_owner_s_turn_and_no_longer_waits(world: CoreWorld) -> None:
    first = await world.bot.handle(Imagine(ADA, "boat"))
    second = await world.bot.handle(Imagine(ADA, "another boat"))
    bea = await world.bot.handle(Imagine(BEA, "a lighthouse"))
    assert isinstance(first, JobQueued)
    assert isinstance(second, JobQueued)
    assert isinstance(bea, JobQueued)
    await world.bot.handle_event(JobEvent(first.job_id, "generate", "started", total=4))
    job = await world.uow.jobs.get_job(first.job_id)
    assert job is not None
    assert job.status is JobStatus.RUNNING
    positions = await _positions(world, ADA, BEA)
    assert first.job_id not in positions
    assert positions == {bea.job_id: 1, second.job_id: 2}


async def test_training_progress_says_step_loss_and_time_left(world: CoreWorld) -> None:
    await upload(world, ADA, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ADA, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ADA, "ink"))
    assert isinstance(queued, JobQueued)
    [note] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "progress", step=120, total=400, loss=0.081, eta_s=130.0)
    )
    assert isinstance(note.reply, JobProgress)
    assert note.reply.text == "Training ink: step 120/400 · loss 0.081 · about 2 min left"
    assert note.reply.eta_s == 130.0
    [early] = await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "progress", step=1, total=400, loss=0.2)
    )
    assert isinstance(early.reply, JobProgress)
    assert early.reply.text == "Training ink: step 1/400 · loss 0.2"


async def test_status_says_a_running_job_waits_once_its_worker_stopped(world: CoreWorld) -> None:
    await upload(world, ADA, (1, 2, 3))
    await world.bot.handle(ConfirmConsent(ADA, "own-work", rights_confirmed=True))
    queued = await world.bot.handle(TrainStyle(ADA, "ink"))
    drawing = await world.bot.handle(Imagine(ADA, "boat"))
    assert isinstance(queued, JobQueued)
    assert isinstance(drawing, JobQueued)
    await world.bot.handle_event(
        JobEvent(queued.job_id, "train", "progress", step=102, total=200, loss=0.1)
    )
    await world.bot.handle_event(JobEvent(drawing.job_id, "generate", "started", total=4))

    alive = await world.bot.handle(ShowStatus(ADA))
    assert isinstance(alive, TextReply)
    assert f"train {queued.job_id}: running, step 102/200\n" in alive.text + "\n"

    world.queue.worker_died(queued.job_id)
    world.queue.worker_died(drawing.job_id)
    stopped = await world.bot.handle(ShowStatus(ADA))
    assert isinstance(stopped, TextReply)
    assert "running" not in stopped.text
    assert (
        f"train {queued.job_id}: waiting (reached step 102/200): its worker stopped; "
        "it resumes from its last checkpoint when a worker takes it up"
    ) in stopped.text
    assert (
        f"generate {drawing.job_id}: waiting: its worker stopped; "
        "it starts again when a worker takes it up"
    ) in stopped.text
