"""The unit of work, on SQLite and on the in-memory fake: every store it hands out
writes in its one transaction, so a block commits all of them or none.

The failure is a real one on both: the block's last write names a user that does not
exist (a foreign key on SQLite, the same check in the fake).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.memory import InMemoryUnitOfWork

from stylebot.bot.core.errors import RecordNotFound
from stylebot.bot.core.ledger import LedgerKind
from stylebot.bot.core.model import NewConsent, NewJob, Requester, User
from stylebot.bot.core.optout import OptedOutImage
from stylebot.bot.core.queue_cleanup import QueueCleanup
from stylebot.bot.core.stores import UnitOfWork
from stylebot.storage.unit_of_work import SqliteUnitOfWork

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BLOB = "b" * 64
ALICE = Requester("discord", "alice", "Alice", chat_id="c1")


@pytest.fixture(params=["sqlite", "memory"])
async def uow(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UnitOfWork]:
    made: UnitOfWork = (
        InMemoryUnitOfWork()
        if request.param == "memory"
        else await SqliteUnitOfWork.open(tmp_path / "stylebot.sqlite3")
    )
    yield made
    await made.close()


async def write_to_every_store(uow: UnitOfWork, alice: User) -> None:
    await uow.usage.record("generate", "discord:alice", None, 1, T0)
    await uow.optouts.add(OptedOutImage("discord", "alice", "a" * 64, "00ff00ff00ff00ff", T0))
    await uow.ledger.append(LedgerKind.CONSENT, {"consent_id": 1}, T0)
    await uow.cleanups.add(QueueCleanup(forget_job_ids=("job-1",)), T0)
    await uow.uploads.add_upload(alice.id, BLOB, "a.png", 64, 64)
    await uow.jobs.add_job(NewJob("job-1", "generate", alice.id, ALICE, T0))


async def block_failing_at_the_end(
    uow: UnitOfWork, alice: User, writes: Coroutine[Any, Any, None]
) -> None:
    async with uow:
        await writes
        # A consent for nobody: a foreign key refuses it on SQLite, the fake checks too.
        await uow.consents.add_consent(NewConsent(alice.id + 1000, "own-work", "1", True, [], T0))


async def what_is_stored(uow: UnitOfWork, alice: User) -> dict[str, Any]:
    return {
        "usage": await uow.usage.total("generate", T0, user_key="discord:alice"),
        "optouts": await uow.optouts.count_naming("discord", "alice"),
        "ledger": len(await uow.ledger.entries()),
        "cleanups": len(await uow.cleanups.pending()),
        "uploads": len(await uow.uploads.pending_uploads(alice.id)),
        "jobs": len(await uow.jobs.active_jobs(alice.id)),
    }


async def test_a_block_that_fails_at_its_last_write_leaves_every_store_as_it_was(
    uow: UnitOfWork,
) -> None:
    alice = await uow.users.get_or_create_user("discord", "alice", "Alice")
    before = await what_is_stored(uow, alice)

    with pytest.raises(RecordNotFound):
        await block_failing_at_the_end(uow, alice, write_to_every_store(uow, alice))

    assert await what_is_stored(uow, alice) == before


async def test_a_block_that_ends_commits_every_store_and_a_failed_inner_block_alone_is_undone(
    uow: UnitOfWork,
) -> None:
    alice = await uow.users.get_or_create_user("discord", "alice", "Alice")

    async with uow:
        await write_to_every_store(uow, alice)
        more_usage = uow.usage.record("generate", "discord:alice", None, 5, T0)
        with pytest.raises(RecordNotFound):
            await block_failing_at_the_end(uow, alice, more_usage)  # nested: a savepoint

    assert await what_is_stored(uow, alice) == {
        "usage": 1,
        "optouts": 1,
        "ledger": 1,
        "cleanups": 1,
        "uploads": 1,
        "jobs": 1,
    }
