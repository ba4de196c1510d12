"""A Redis error in a job's helper (lease renewal, cancel watch) is survived.

One failed command used to end the helper for the rest of the job: the lease
lapsed (another worker ran the job a second time), a /cancel went unseen, and
the stale error was raised when the job left the helper. Real embedded Redis:
the client under test runs as its own ACL user, whose permission for the one
command is taken away for a moment (a real server-side error).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from tests.support.stored_checkpoints import save_checkpoint

from stylebot.queue.job_lifecycle import CancelWatch
from stylebot.queue.keys import arq_in_progress_key, cancel_key
from stylebot.queue.recovery import CheckpointStore, JobLease
from stylebot.queue.redis_server import EmbeddedRedis
from stylebot.storage.blobs import LocalBlobStore

USER = "worker"


class Clients:
    """`admin` controls the server; `worker` is the client whose commands fail."""

    def __init__(self, admin: ArqRedis, worker: Redis) -> None:
        self.admin = admin
        self.worker = worker

    async def deny(self, command: str) -> None:
        await self.admin.acl_setuser(USER, enabled=True, nopass=True, commands=[f"-{command}"])

    async def allow(self, command: str) -> None:
        await self.admin.acl_setuser(USER, enabled=True, nopass=True, commands=[f"+{command}"])


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[Clients]:
    with EmbeddedRedis(tmp_path) as server:
        admin = ArqRedis(unix_socket_path=str(server.socket_path))
        await admin.acl_setuser(
            USER, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all"]
        )
        worker = Redis(unix_socket_path=str(server.socket_path), username=USER, password="-")
        yield Clients(admin, worker)
        await worker.aclose()
        await admin.aclose()


async def test_the_lease_is_renewed_again_after_a_failed_renewal(clients: Clients) -> None:
    key = arq_in_progress_key("j1")
    await clients.admin.psetex(key, 600, b"1")
    lease = JobLease(clients.worker, "j1", 0.6)  # renewed every 0.2 s
    async with lease:
        await clients.deny("pexpire")
        await asyncio.sleep(0.4)  # a renewal or two fail; the lease has time left
        await clients.allow("pexpire")
        await asyncio.sleep(1.2)  # two leases: without renewal the key is gone
        assert await clients.admin.pttl(key) > 0
    # Leaving the lease does not raise the error of the failed renewal.


async def test_a_lease_not_renewed_for_its_lifetime_is_logged_as_an_error(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    key = arq_in_progress_key("j2")
    await clients.admin.psetex(key, 600, b"1")
    with caplog.at_level(logging.WARNING, logger="stylebot.queue.recovery"):
        async with JobLease(clients.worker, "j2", 0.6):
            await clients.deny("pexpire")
            await asyncio.sleep(1.0)
            await clients.allow("pexpire")
            await asyncio.sleep(0.3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "another worker may take the job" in errors[0].getMessage()
    assert any("renewing the lease of job j2 failed" in r.getMessage() for r in caplog.records)


async def test_a_cancel_after_a_failed_check_is_seen_and_leaving_does_not_raise(
    clients: Clients,
) -> None:
    watch = CancelWatch(clients.worker, "j3")
    async with watch:
        await clients.deny("exists")
        await asyncio.sleep(0.3)  # a check fails
        await clients.admin.set(cancel_key("j3"), b"1")  # the user cancels meanwhile
        await clients.allow("exists")
        for _ in range(60):  # 3 s
            if watch.is_set():
                break
            await asyncio.sleep(0.05)
    assert watch.is_set()


async def test_a_checkpoint_that_could_not_be_recorded_leaves_no_blob(
    clients: Clients, tmp_path: Path
) -> None:
    await clients.admin.enqueue_job("train", {}, _job_id="j4")  # a training, in arq
    blobs = LocalBlobStore(tmp_path / "blobs")
    store = CheckpointStore(clients.worker, blobs)
    await clients.deny("set")
    # Refused inside the script that records it: Redis says so in its own words.
    with pytest.raises(Exception, match="can't run this command"):
        await save_checkpoint(store, "j4", b"state at step 10", 10, tmp_path)
    await clients.allow("set")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
