"""Fresh blob copies in Redis (issue 19): a worker's small blob is taken by the front end
from Redis, once, checked against its key; anything else reads the S3 store as before.

The real S3 store on the real SeaweedFS (behind the proxy that notes each request), the
real embedded Redis; faults for real: bytes flipped in Redis and in the bucket, a Redis
that is not there.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from tests.integration.storage.test_blob_store_contract import _s3, s3_store
from tests.support.cutting_proxy import CuttingProxy
from tests.support.processes import free_port
from tests.support.s3_server import SeaweedS3

from stylebot.bot.core.errors import DamagedBlob
from stylebot.queue.fresh_blobs import (
    COPY_KEPT_S,
    COPY_MAX_BYTES,
    FreshBlobCopies,
    with_fresh_copies,
)
from stylebot.queue.keys import fresh_blob_key
from stylebot.storage.blobs import LocalBlobStore
from stylebot.storage.s3_blobs import S3BlobStore

PNG_SIZED = 150 * 1024
WORKER_ACL = Path(__file__).resolve().parents[3] / "deploy" / "redis-worker.acl"


@pytest.fixture
def proxy(s3_server: SeaweedS3) -> Iterator[CuttingProxy]:
    with CuttingProxy(int(s3_server.ports["s3.port"])) as noting:
        yield noting


@pytest.fixture
def store(s3_server: SeaweedS3, s3_prefix: str, proxy: CuttingProxy) -> S3BlobStore:
    return s3_store(s3_server, s3_prefix, endpoint_url=proxy.url)


def asked(proxy: CuttingProxy) -> list[str]:
    return [request.method for request in proxy.requests]


async def test_a_workers_blob_is_taken_from_redis_once(
    store: S3BlobStore, redis: ArqRedis, proxy: CuttingProxy
) -> None:
    worker = FreshBlobCopies(store, redis, leaves_copies=True)
    frontend = FreshBlobCopies(store, redis, leaves_copies=False)
    data = os.urandom(PNG_SIZED)

    key = await worker.put(data)
    assert asked(proxy) == ["PUT"]  # stored first: the record is the store's
    assert 0 < await redis.ttl(fresh_blob_key(key)) <= COPY_KEPT_S

    assert await frontend.get(key) == data
    assert asked(proxy) == ["PUT"], "read from Redis, not the store"
    assert not await redis.exists(fresh_blob_key(key)), "taken, not left behind"
    assert await frontend.get(key) == data  # again: from the store
    assert asked(proxy) == ["PUT", "GET"]


async def test_a_big_blob_and_a_front_ends_blob_leave_no_copy(
    store: S3BlobStore, redis: ArqRedis
) -> None:
    worker = FreshBlobCopies(store, redis, leaves_copies=True)
    frontend = FreshBlobCopies(store, redis, leaves_copies=False)

    big = await worker.put(os.urandom(COPY_MAX_BYTES + 1))
    upload = await frontend.put(os.urandom(PNG_SIZED))

    assert not await redis.exists(fresh_blob_key(big), fresh_blob_key(upload))


async def test_a_copy_that_does_not_match_its_key_is_passed_over_for_the_store(
    s3_server: SeaweedS3, s3_prefix: str, redis: ArqRedis
) -> None:
    contract = _s3(s3_server, s3_prefix)
    worker = FreshBlobCopies(contract.store, redis, leaves_copies=True)
    data = os.urandom(PNG_SIZED)
    key = await worker.put(data)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    await redis.set(fresh_blob_key(key), bytes(flipped))

    assert await worker.get(key) == data

    # Both copies damaged: the store's answer, as without copies.
    await worker.put(data)
    await redis.set(fresh_blob_key(key), bytes(flipped))
    contract.damage(key)
    with pytest.raises(DamagedBlob):
        await worker.get(key)


async def test_a_put_the_store_refused_leaves_no_copy(
    s3_server: SeaweedS3, s3_prefix: str, redis: ArqRedis
) -> None:
    # The copy is written while the PUT is under way: a PUT that fails (no S3 server
    # on that port: a real refusal) must take it away again.
    unreachable = s3_store(
        s3_server, s3_prefix, max_attempts=1, endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    worker = FreshBlobCopies(unreachable, redis, leaves_copies=True)
    data = os.urandom(PNG_SIZED)

    with pytest.raises(Exception, match="store"):
        await worker.put(data)

    assert not await redis.exists(fresh_blob_key(hashlib.sha256(data).hexdigest()))


async def test_deleting_a_blob_deletes_its_copy(store: S3BlobStore, redis: ArqRedis) -> None:
    worker = FreshBlobCopies(store, redis, leaves_copies=True)
    key = await worker.put(b"a result its owner erased")

    await worker.delete(key)

    assert not await redis.exists(fresh_blob_key(key))
    with pytest.raises(KeyError):
        await worker.get(key)


async def test_without_redis_the_store_alone_serves(
    store: S3BlobStore, proxy: CuttingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    try:
        worker = FreshBlobCopies(store, nowhere, leaves_copies=True)
        data = os.urandom(PNG_SIZED)

        key = await worker.put(data)
        assert await worker.get(key) == data
        await worker.delete(key)
    finally:
        await nowhere.aclose()

    assert key == hashlib.sha256(data).hexdigest()
    assert asked(proxy)[:2] == ["PUT", "GET"]
    said = [r.getMessage() for r in caplog.records if "fresh blob copy" in r.getMessage()]
    assert len(said) == 1, said  # once, not at every blob
    assert said[0].endswith(f"blobs are read from {store.location} only"), said


def test_a_directory_store_gets_no_copies(tmp_path: Path, redis: ArqRedis) -> None:
    local = LocalBlobStore(tmp_path / "blobs")
    assert with_fresh_copies(local, redis, leaves_copies=True) is local


async def test_the_workers_redis_user_may_leave_take_and_delete_copies(
    store: S3BlobStore, redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    [rules] = [line for line in WORKER_ACL.read_text().splitlines() if "stylebot-worker" in line]
    _user, name, *grants = rules.split()
    password = secrets.token_hex(16)
    grants = [f">{password}" if grant.startswith(">") else grant for grant in grants]
    await redis.execute_command("ACL", "SETUSER", name, *grants)
    as_worker = Redis(
        unix_socket_path=redis.connection_pool.connection_kwargs["path"],
        username=name,
        password=password,
        # No CLIENT SETINFO at connect: the ACL refuses CLIENT, and only the copies count.
        lib_name=None,
        lib_version=None,
    )
    try:
        worker = FreshBlobCopies(store, as_worker, leaves_copies=True)
        data = os.urandom(PNG_SIZED)
        key = await worker.put(data)
        assert await redis.exists(fresh_blob_key(key)), "left"
        assert await worker.get(key) == data
        await worker.put(data)
        await worker.delete(key)
        assert not await redis.exists(fresh_blob_key(key)), "deleted"
    finally:
        await as_worker.aclose()
    assert not [r for r in caplog.records if "fresh blob copy" in r.getMessage()]
    refused = await redis.execute_command("ACL", "LOG")
    assert refused == [], [str(entry) for entry in refused]
