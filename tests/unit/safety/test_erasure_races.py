"""/forgetme racing what the queue is doing: a request being admitted at the same
moment, and results of erased jobs that arrive after the erasure."""

from __future__ import annotations

import asyncio

from tests.fakes.core import person
from tests.fakes.safety import SafetyWorld
from tests.unit.safety.test_erasure import generate, train

from stylebot.bot.core.commands import EraseMyData, Imagine, ShareStyle
from stylebot.bot.core.replies import JobQueued
from stylebot.queue.payloads import GenerateJob, JobEvent

ALICE = person("alice")
BOB = person("bob")


async def test_an_imagine_being_queued_during_the_erasure_is_forgotten_after_it_is_queued(
    safe: SafetyWorld,
) -> None:
    # Alice owns no style, so nothing but the erasure itself can order the two.
    order: list[tuple[str, str]] = []
    entered, release = asyncio.Event(), asyncio.Event()
    enqueue, forget = safe.queue.enqueue_generate, safe.queue.forget_jobs

    async def slow_enqueue(job: GenerateJob) -> None:
        entered.set()
        await release.wait()
        await enqueue(job)
        order.append(("queued", job.job_id))

    async def recorded_forget(job_ids: list[str], owner: str | None = None) -> None:
        await forget(job_ids, owner)
        order.extend(("forgotten", job_id) for job_id in job_ids)

    safe.queue.enqueue_generate = slow_enqueue  # type: ignore[method-assign]
    safe.queue.forget_jobs = recorded_forget  # type: ignore[method-assign,assignment]
    imagine = asyncio.create_task(safe.bot.handle(Imagine(ALICE, "my secret harbour", seed=1)))
    await entered.wait()  # the job row is written; its payload is on its way to the queue
    erasure = asyncio.create_task(safe.bot.handle(EraseMyData(ALICE, confirmed=True)))
    await asyncio.wait([erasure], timeout=0.5)  # as far as it gets on its own
    release.set()
    queued = await imagine
    await erasure

    assert isinstance(queued, JobQueued)
    # The payload (with the prompt) reached the queue before the erasure forgot it.
    assert order.index(("queued", queued.job_id)) < order.index(("forgotten", queued.job_id))
    assert await safe.uow.users.find_user(ALICE.platform, ALICE.user_id) is None


async def test_late_events_of_erased_jobs_get_one_rewrite_of_the_queue_files_after_the_burst(
    safe: SafetyWorld,
) -> None:
    safe.bot.deps.queue_cleanup.late_rewrite_delay_s = 0.2
    await train(safe, BOB, "sea", 20)
    await safe.bot.handle(ShareStyle(BOB, "sea", public=True))
    job_ids = [await generate(safe, ALICE, "sea", finish=False) for _ in range(3)]
    await safe.bot.handle(EraseMyData(ALICE, confirmed=True))
    rewrites = len(safe.queue.disk_rewrites)

    # A worker that had not seen the cancels yet reports on each job.
    for job_id in job_ids:
        await safe.bot.handle_event(JobEvent(job_id, "generate", "failed", error="stopped"))
    assert safe.queue.forgotten[-3:] == job_ids  # forgotten at once
    assert len(safe.queue.disk_rewrites) == rewrites  # the rewrite waits for the burst

    await asyncio.sleep(0.5)
    # One rewrite for the three, after they were forgotten.
    assert safe.queue.disk_rewrites[rewrites:] == [tuple(safe.queue.forgotten)]
    await safe.bot.stop_queue_cleanups()
