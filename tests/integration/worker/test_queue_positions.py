"""The queue positions users are told are the order a real worker then runs their jobs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from typing import Any

import pytest
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.core.admin_commands import ShowQueue
from stylebot.bot.core.commands import Imagine, ShowStatus
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobFinished, JobQueued, TextReply
from stylebot.config import Settings
from stylebot.queue.keys import EVENTS_STREAM, QUEUE_NAME
from stylebot.queue.payloads import GenerateJob, JobEvent
from stylebot.queue.worker import build_worker

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _person(name: str) -> Requester:
    return Requester("test", name, name.title(), chat_id=f"chat-{name}")


async def test_reported_positions_are_the_order_the_worker_runs_the_jobs(
    frontend: FrontEnd, tiny_engine: Any
) -> None:
    ada, bea, cy = _person("ada"), _person("bea"), _person("cy")
    # Ada's burst arrives first; Bea and Cy ask later and take turns with her.
    arrivals = [ada, ada, ada, bea, cy, bea]
    queued: list[JobQueued] = []
    for who in arrivals:
        reply = await frontend.bot.handle(Imagine(who, "a small boat", steps=1, seed=3))
        assert isinstance(reply, JobQueued), reply
        queued.append(reply)
    # Later arrivals may go ahead of a burst, so positions are read after all
    # of them, from /status, as a user would.
    positions: dict[str, int] = {}
    for who in (ada, bea, cy):
        status = await frontend.bot.handle(ShowStatus(who))
        assert isinstance(status, TextReply)
        for job_id, position in re.findall(
            r"(generate-\w+): queued \(position (\d+) ", status.text
        ):
            positions[job_id] = int(position)
    assert set(positions) == {reply.job_id for reply in queued}
    # Each reply said where the job stood when it was queued: no later
    # arrival was ahead of it then.
    assert [reply.position for reply in queued] == [1, 2, 3, 2, 3, 5]
    # Owners take turns: not simply arrival order.
    assert sorted(positions.values()) == list(range(1, len(arrivals) + 1))
    assert positions[queued[4].job_id] < positions[queued[1].job_id]

    # One job per pipeline call, and slots for every job, so that the order
    # the device runs them is the order the worker started them in.
    unbatched = frontend.settings.replace(max_batch_size=1, worker_concurrency=len(arrivals))
    worker = build_worker(
        unbatched, frontend.redis_url, burst=True, handle_signals=False, engine=tiny_engine
    )
    async with asyncio.timeout(180):
        await worker.async_run()
    await worker.close()

    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    finished = [e.job_id for e in events if e.kind == "finished"]
    assert finished == sorted(positions, key=lambda job_id: positions[job_id])


# -- turns fixed when a job is queued ----------------------------------------------------------

OPERATOR = Requester("test", "root", "Root", chat_id="chat-root")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Root may see the whole queue (/admin queue); users may queue more than the
    worker has slots, to see them wait."""
    return settings.replace(operators="test:root", max_queued_per_user=10)


def _two_slots(frontend: FrontEnd) -> Settings:
    """A worker with fewer slots than queued jobs (2), one job per pipeline call,
    so that it starts jobs while others wait and runs them in the order it starts them."""
    settings = frontend.settings.replace(max_batch_size=1, worker_concurrency=1)
    return settings


def _job_payload(job_id: str, owner: str) -> GenerateJob:
    return GenerateJob(
        job_id=job_id,
        prompt="a small boat",
        negative_prompt="",
        seed=1,
        steps=1,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=(hashlib.sha256(job_id.encode()).hexdigest()[:12],),
        owner=owner,
    )


async def _imagine(frontend: FrontEnd, who: Requester, count: int) -> list[str]:
    job_ids = []
    for _ in range(count):
        reply = await frontend.bot.handle(Imagine(who, "a small boat", steps=1, seed=3))
        assert isinstance(reply, JobQueued), reply
        job_ids.append(reply.job_id)
    return job_ids


async def _status_positions(frontend: FrontEnd, *who: Requester) -> dict[str, int]:
    """The waiting generation jobs of these users, and the positions /status tells them."""
    positions: dict[str, int] = {}
    for requester in who:
        status = await frontend.bot.handle(ShowStatus(requester))
        assert isinstance(status, TextReply)
        for job_id, position in re.findall(
            r"(generate-\w+): queued \(position (\d+) ", status.text
        ):
            positions[job_id] = int(position)
    return positions


async def _status_order(frontend: FrontEnd, *who: Requester) -> list[str]:
    """The waiting jobs of these users (all that wait), in the order /status puts them."""
    positions = await _status_positions(frontend, *who)
    order = sorted(positions, key=lambda job_id: positions[job_id])
    # Positions are places in one line: 1, 2, 3, ... with no gaps or ties.
    assert sorted(positions.values()) == list(range(1, len(order) + 1)), positions
    return order


async def _admin_order(frontend: FrontEnd) -> list[str]:
    """The generation queue as /admin queue lists it, with its numbers."""
    listing = await frontend.bot.handle(ShowQueue(OPERATOR))
    assert isinstance(listing, TextReply), listing
    numbered = re.findall(r"^\s+(\d+)\. generate by .*\((generate-\w+)\)$", listing.text, re.M)
    assert [int(place) for place, _job_id in numbered] == list(range(1, len(numbered) + 1))
    return [job_id for _place, job_id in numbered]


async def _finished(frontend: FrontEnd) -> list[str]:
    entries = await frontend.queue.redis.xrange(EVENTS_STREAM)
    events = [JobEvent.from_json(fields[b"event"]) for _id, fields in entries]
    return [e.job_id for e in events if e.kind == "finished"]


async def _delivered(inbox: Inbox, count: int) -> None:
    """Wait until the front end has told users of `count` finished jobs."""
    for _job in range(count):
        ready = await inbox.next((ImagesReady, JobFinished), within=300)
        assert isinstance(ready.reply, ImagesReady), ready.reply


async def _run_until_empty(frontend: FrontEnd, tiny_engine: Any) -> None:
    worker = build_worker(
        _two_slots(frontend),
        frontend.redis_url,
        burst=True,
        handle_signals=False,
        engine=tiny_engine,
    )
    assert worker.max_jobs == 2
    async with asyncio.timeout(300):
        await worker.async_run()
    await worker.close()


async def test_a_finished_job_does_not_let_its_owner_s_next_job_jump_ahead(
    frontend: FrontEnd, tiny_engine: Any
) -> None:
    ada, bea, cy = _person("ada"), _person("bea"), _person("cy")
    ada_jobs = await _imagine(frontend, ada, 3)
    bea_jobs = await _imagine(frontend, bea, 1)
    cy_jobs = await _imagine(frontend, cy, 2)
    told = await _status_order(frontend, ada, bea, cy)
    assert told == [ada_jobs[0], bea_jobs[0], cy_jobs[0], ada_jobs[1], cy_jobs[1], ada_jobs[2]]
    assert await _admin_order(frontend) == told

    await _run_until_empty(frontend, tiny_engine)

    # Two slots, six jobs: Ada's first job finishes while Cy's first still
    # waits. Counting turns from the queue alone, Ada's second job would then
    # be her first again and go ahead of Cy's; its turn was fixed instead.
    assert await _finished(frontend) == told
    assert await frontend.queue.waiting_order("generate") == []


async def test_an_owner_back_from_idle_takes_turns_and_has_banked_none(
    frontend: FrontEnd, inbox: Inbox, tiny_engine: Any
) -> None:
    ada, dan = _person("ada"), _person("dan")
    [dan_first] = await _imagine(frontend, dan, 1)
    ada_early = await _imagine(frontend, ada, 5)
    await _run_until_empty(frontend, tiny_engine)
    assert await _finished(frontend) == [dan_first, *ada_early]
    await _delivered(inbox, len(ada_early) + 1)

    # Ada ran a job in each of rounds 0..4; Dan only in round 0. Coming back,
    # Dan joins the current round: one job, then one a round like Ada, not
    # four rounds' worth of turns ahead of her.
    ada_late = await _imagine(frontend, ada, 3)
    dan_late = await _imagine(frontend, dan, 3)
    told = await _status_order(frontend, ada, dan)
    assert told == [dan_late[0], ada_late[0], dan_late[1], ada_late[1], dan_late[2], ada_late[2]]
    assert await _admin_order(frontend) == told

    await _run_until_empty(frontend, tiny_engine)
    finished = await _finished(frontend)
    assert finished[len(ada_early) + 1 :] == told


async def test_positions_told_at_any_moment_are_the_order_a_running_worker_keeps(
    frontend: FrontEnd, inbox: Inbox, tiny_engine: Any
) -> None:
    ada, bea, cy, dan = everyone = [_person(name) for name in ("ada", "bea", "cy", "dan")]
    worker = build_worker(
        _two_slots(frontend), frontend.redis_url, handle_signals=False, engine=tiny_engine
    )
    running = asyncio.create_task(worker.async_run())
    snapshots: list[list[str]] = []
    queued: list[str] = []
    try:
        # Waves of requests while the worker runs: owners' jobs finish at
        # different times, and each wave finds the queue in another state.
        waves = [(ada, 4), (bea, 2), (cy, 1), (ada, 2), (dan, 3), (bea, 3), (cy, 2), (ada, 1)]
        for who, count in waves:
            queued += await _imagine(frontend, who, count)
            # One moment: /status of every user, /admin queue, and /status again
            # unchanged (jobs only leave the queue, so nothing moved in between).
            for _attempt in range(50):
                before = await _status_positions(frontend, *everyone)
                listed = await _admin_order(frontend)
                after = await _status_positions(frontend, *everyone)
                if before == after:
                    told = sorted(before, key=lambda job_id: before[job_id])
                    assert sorted(before.values()) == list(range(1, len(told) + 1))
                    assert listed == told
                    snapshots.append(told)
                    break
        await _delivered(inbox, len(queued))
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()

    finished = await _finished(frontend)
    assert sorted(finished) == sorted(queued)
    # At every moment, the jobs then waiting ran in the order users were told.
    assert len(snapshots) >= len(waves) // 2
    assert any(len(told) >= 4 for told in snapshots)
    for told in snapshots:
        assert [job_id for job_id in finished if job_id in told] == told
    assert await frontend.queue.waiting_order("generate") == []


async def test_jobs_queued_before_turns_were_kept_still_run_and_go_first(
    frontend: FrontEnd, tiny_engine: Any
) -> None:
    ada, bea = _person("ada"), _person("bea")
    [ada_job] = await _imagine(frontend, ada, 1)
    # A job an older front end queued: in arq's queue, with no turn.
    old = _job_payload("generate-old", "test:old")
    assert await frontend.queue.redis.enqueue_job(
        "generate", old.to_dict(), _job_id=old.job_id, _queue_name=QUEUE_NAME
    )
    [bea_job] = await _imagine(frontend, bea, 1)
    assert await frontend.queue.waiting_order("generate") == [ada_job, bea_job]

    await _run_until_empty(frontend, tiny_engine)
    assert await _finished(frontend) == [old.job_id, ada_job, bea_job]
