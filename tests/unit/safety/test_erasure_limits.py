"""Style deletion and /forgetme cannot be used to slow the bot for everyone: a daily
limit per user (each makes the queue rewrite its files), and the queue's part of a
deletion does not hold up other people's requests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from tests.fakes.core import person
from tests.fakes.safety import safety_world
from tests.unit.core.test_service import trained_style

from stylebot.bot.core.commands import DeleteStyle, EraseMyData, Imagine
from stylebot.bot.core.policy import Policy
from stylebot.bot.core.replies import ErrorReply, JobQueued, TextReply
from stylebot.queue.payloads import TrainSettings

ALICE = person("alice", server="guild-1")
BOB = person("bob", server="guild-1")
LIMITED = Policy(
    base_model="tiny", train=TrainSettings(steps=10, resolution=64), erasures_per_user_per_day=2
)


async def test_deletions_and_erasures_are_limited_per_user_per_day() -> None:
    world = safety_world(LIMITED)
    for name in ("ink", "oil", "wax"):
        await trained_style(world, ALICE, name)
    await trained_style(world, BOB, "chalk")

    assert isinstance(await world.bot.handle(DeleteStyle(ALICE, "ink")), TextReply)
    assert isinstance(await world.bot.handle(DeleteStyle(ALICE, "oil")), TextReply)
    refused = await world.bot.handle(DeleteStyle(ALICE, "wax"))
    assert isinstance(refused, ErrorReply), refused
    assert "at most 2" in refused.text
    assert isinstance(await world.bot.handle(EraseMyData(ALICE, confirmed=True)), ErrorReply)
    alice = await world.uow.users.find_user("discord", "alice")
    assert alice is not None
    assert await world.uow.styles.find_style(alice.id, "wax") is not None  # nothing was deleted
    assert len(world.queue.disk_rewrites) == 2
    # Someone else's limit is their own.
    assert isinstance(await world.bot.handle(DeleteStyle(BOB, "chalk")), TextReply)

    # A day later she may again; the erasure counts too, also once she is erased.
    world.clock.current += timedelta(days=1)
    assert isinstance(await world.bot.handle(EraseMyData(ALICE, confirmed=True)), TextReply)
    await trained_style(world, ALICE, "new")
    await trained_style(world, ALICE, "newer")
    assert isinstance(await world.bot.handle(DeleteStyle(ALICE, "new")), TextReply)
    assert isinstance(await world.bot.handle(DeleteStyle(ALICE, "newer")), ErrorReply)


async def test_other_peoples_requests_go_ahead_while_the_queue_forgets_a_deleted_style() -> None:
    world = safety_world()
    await trained_style(world, ALICE, "ink")
    forgetting, released = asyncio.Event(), asyncio.Event()
    record_forgotten = world.queue.forget_jobs

    async def slow_forget_jobs(job_ids: Sequence[str], owner: str | None = None) -> None:
        # A Redis busy with a large erasure: the queue's part takes its time.
        forgetting.set()
        await released.wait()
        await record_forgotten(job_ids, owner)

    world.queue.forget_jobs = slow_forget_jobs  # type: ignore[method-assign]
    deletion = asyncio.create_task(world.bot.handle(DeleteStyle(ALICE, "ink")))
    await asyncio.wait_for(forgetting.wait(), 5)

    queued = await asyncio.wait_for(world.bot.handle(Imagine(BOB, "a harbour", seed=1)), 5)
    assert isinstance(queued, JobQueued), queued
    released.set()
    assert isinstance(await deletion, TextReply)
    assert world.queue.forgotten  # the deleted style's jobs, once the queue got to them
