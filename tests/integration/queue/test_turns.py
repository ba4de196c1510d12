"""Fair turns in the real Redis: given at enqueue by the rule, read back as workers use them."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest
from tests.fakes.lane_turns import LaneTurns

from stylebot.bootstrap import FrontEnd
from stylebot.queue.client import QueueError
from stylebot.queue.fairness import Turn
from stylebot.queue.keys import QUEUE_NAME, arq_in_progress_key, current_round_key, owner_rounds_key
from stylebot.queue.payloads import GenerateJob
from stylebot.queue.turns import claim, lane_turns, queue_version, read_turns
from stylebot.queue.worker import StyleWorker


def _job(job_id: str, owner: str | None) -> GenerateJob:
    output_id = hashlib.sha256(job_id.encode()).hexdigest()[:12]
    return GenerateJob(
        job_id=job_id,
        prompt="a small boat",
        negative_prompt="",
        seed=1,
        steps=1,
        guidance=7.5,
        width=256,
        height=256,
        output_ids=(output_id,),
        owner=owner,
    )


async def test_redis_gives_the_turns_the_rule_gives(frontend: FrontEnd) -> None:
    """A long mixed script of queueing, starting and finishing, on Redis and on the model."""
    redis = frontend.queue.redis
    model = LaneTurns()
    script = random.Random(20261122)
    owners = ["test:ada", "test:bea", "test:cy", "test:dan", None]
    waiting: list[str] = []
    running: list[str] = []
    for step in range(160):
        action = script.random()
        if action < 0.45 or not (waiting or running):
            job_id = f"job-{step}"
            owner = script.choice(owners)
            await frontend.queue.enqueue_generate(_job(job_id, owner))
            model.give(job_id, owner)
            waiting.append(job_id)
        elif action < 0.75 and waiting:
            # A worker starts the first job in turn order (claims it at the current version).
            job_id = min(waiting, key=lambda j: model.turns[j])
            assert await claim(redis, await queue_version(redis), "generate", job_id)
            model.started(job_id)
            waiting.remove(job_id)
            running.append(job_id)
        elif running:
            job_id = running.pop(script.randrange(len(running)))
            await frontend.queue.cancel(job_id)  # leaves the order as a finished job does
            model.remove(job_id)
        assert await lane_turns(redis, "generate") == model.turns
        assert int(await redis.get(current_round_key("generate")) or 0) == model.current_round
    assert await frontend.queue.waiting_order("generate") == model.order()
    # Owners came and went: somebody started past round 0, and came back idle.
    assert model.current_round > 3
    # Only owners are booked; jobs without one leave no entry behind.
    booked = await redis.hkeys(owner_rounds_key("generate"))
    assert sorted(key.decode() for key in booked) == ["test:ada", "test:bea", "test:cy", "test:dan"]


async def test_concurrent_enqueues_get_distinct_turns_one_round_each(frontend: FrontEnd) -> None:
    jobs = [_job(f"ada-{i}", "test:ada") for i in range(20)]
    await asyncio.gather(*(frontend.queue.enqueue_generate(job) for job in jobs))
    turns = await read_turns(frontend.queue.redis, "generate", [job.job_id for job in jobs])
    assert sorted(turn.round for turn in turns.values()) == list(range(20))
    assert len({turn.arrival for turn in turns.values()}) == 20
    # The order is the arrival order (one owner), and arq's queue holds every job.
    order = await frontend.queue.waiting_order("generate")
    assert order == sorted(order, key=lambda job_id: turns[job_id].arrival)
    assert await frontend.queue.redis.zcard(QUEUE_NAME) == 20


async def test_queueing_a_job_again_is_refused_and_keeps_its_turn(frontend: FrontEnd) -> None:
    await frontend.queue.enqueue_generate(_job("ada-1", "test:ada"))
    await frontend.queue.enqueue_generate(_job("bea-1", "test:bea"))
    before = await lane_turns(frontend.queue.redis, "generate")
    with pytest.raises(QueueError):
        await frontend.queue.enqueue_generate(_job("ada-1", "test:ada"))
    assert await lane_turns(frontend.queue.redis, "generate") == before
    assert await frontend.queue.waiting_order("generate") == ["ada-1", "bea-1"]


async def test_a_cancelled_job_leaves_the_order_and_the_others_keep_their_turns(
    frontend: FrontEnd,
) -> None:
    for job_id, owner in [("ada-1", "test:ada"), ("ada-2", "test:ada"), ("bea-1", "test:bea")]:
        await frontend.queue.enqueue_generate(_job(job_id, owner))
    assert await frontend.queue.waiting_order("generate") == ["ada-1", "bea-1", "ada-2"]
    await frontend.queue.cancel("bea-1")
    assert await frontend.queue.waiting_order("generate") == ["ada-1", "ada-2"]
    assert (await lane_turns(frontend.queue.redis, "generate"))["ada-2"] == Turn(1, 2)


async def test_a_start_on_an_outdated_read_of_the_queue_is_refused(frontend: FrontEnd) -> None:
    redis = frontend.queue.redis
    await frontend.queue.enqueue_generate(_job("ada-1", "test:ada"))
    await frontend.queue.enqueue_generate(_job("ada-2", "test:ada"))
    read_at = await queue_version(redis)
    # Bea's job arrives while a worker decides on ada-2: it comes first now.
    await frontend.queue.enqueue_generate(_job("bea-1", "test:bea"))
    assert not await claim(redis, read_at, "generate", "ada-2")
    assert await redis.get(current_round_key("generate")) is None  # nothing moved
    assert await frontend.queue.waiting_order("generate") == ["ada-1", "bea-1", "ada-2"]
    assert await claim(redis, await queue_version(redis), "generate", "ada-1")


async def test_a_retried_job_keeps_its_turn_and_a_finished_one_leaves(frontend: FrontEnd) -> None:
    redis = frontend.queue.redis
    for job_id, owner in [("ada-1", "test:ada"), ("ada-2", "test:ada"), ("bea-1", "test:bea")]:
        await frontend.queue.enqueue_generate(_job(job_id, owner))
    # The worker's bookkeeping on the front end's connection (never closed here:
    # closing a worker closes its pool).
    worker = StyleWorker(frontend.settings, redis_pool=redis, handle_signals=False)
    # What arq does with a job it ran but did not finish (a shutdown, or a
    # lapsed lease): it stays queued for a retry, in its turn.
    await redis.set(arq_in_progress_key("ada-1"), b"1")
    await worker.finish_job("ada-1", False, None, None, False, None, None)
    assert await frontend.queue.waiting_order("generate") == ["ada-1", "bea-1", "ada-2"]
    # Done, its result kept: it leaves the order.
    await worker.finish_job("ada-1", True, b"{}", 60.0, False, None, None)
    assert await frontend.queue.waiting_order("generate") == ["bea-1", "ada-2"]
    # Failed before it ran (arq gave up on it): it leaves the order too.
    await worker.finish_failed_job("bea-1", b"{}")
    assert await frontend.queue.waiting_order("generate") == ["ada-2"]
