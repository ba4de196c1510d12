"""The S3 store when the object store goes away for real: its server SIGKILLed, then
started again on the same ports and data. An operation either succeeds once the
server is back (retries with backoff, a broken download resumed) or fails with
`BlobStoreUnavailable` naming the store; it never returns wrong content."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.storage.test_blob_store_contract import PART, s3_store
from tests.support.cutting_proxy import CuttingProxy
from tests.support.s3_server import SeaweedS3

from stylebot.storage.blob_storage import BlobStoreUnavailable
from stylebot.storage.blobs import sha256_of_file


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A server of this test's own: it gets killed."""
    with SeaweedS3(tmp_path / "seaweedfs") as server:
        yield server


async def test_a_read_while_the_store_is_down_fails_naming_the_store(
    own_s3_server: SeaweedS3,
) -> None:
    store = s3_store(own_s3_server, "outage/")
    key = await store.put(b"a checkpoint")
    own_s3_server.kill()
    started = time.monotonic()
    with pytest.raises(BlobStoreUnavailable, match=f"could not read blob {key} in s3://"):
        await store.get(key)
    with pytest.raises(BlobStoreUnavailable, match="could not store blob"):
        await store.put(b"a result")
    assert time.monotonic() - started < 60, "retries are bounded"


async def test_a_write_waits_out_a_restart_and_the_content_is_right(
    own_s3_server: SeaweedS3,
) -> None:
    # Twenty attempts: botocore's jittered backoff (up to 20 s each) outlasts a restart
    # even on a loaded machine.
    store = s3_store(own_s3_server, "restart/", max_attempts=20)
    own_s3_server.kill()
    data = os.urandom(256 * 1024)
    writing = asyncio.ensure_future(store.put(data))
    await asyncio.sleep(1.0)
    assert not writing.done(), "the write retries while the store is down"
    await asyncio.to_thread(own_s3_server.start)
    key = await asyncio.wait_for(writing, timeout=120)
    assert key == hashlib.sha256(data).hexdigest()
    assert await store.get(key) == data


async def test_a_download_cut_off_by_a_restart_resumes_or_fails_never_wrong(
    own_s3_server: SeaweedS3, tmp_path: Path
) -> None:
    server = own_s3_server
    store = s3_store(server, "cut/")
    source = write_random_file(tmp_path / "big.bin", parts=12)
    key = await store.put_file(source)
    downloads = tmp_path / "downloads"
    await asyncio.to_thread(downloads.mkdir)

    def restart_once_the_download_is_under_way() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.stat().st_size > 0 for p in downloads.glob(".tmp-*")):
                server.kill()
                time.sleep(1.0)
                server.start()
                return
            time.sleep(0.001)

    restarter = threading.Thread(target=restart_once_the_download_is_under_way)
    restarter.start()
    target = downloads / "restored.bin"
    failure: BlobStoreUnavailable | None = None
    try:
        await store.get_to_file(key, target)
    except BlobStoreUnavailable as exc:  # allowed: a clear error naming the blob
        failure = exc
    finally:
        await asyncio.to_thread(restarter.join)
    if failure is not None:
        assert key in str(failure)
        assert await asyncio.to_thread(names_in, downloads) == []
    else:
        assert await asyncio.to_thread(sha256_of_file, target) == key
        assert await asyncio.to_thread(names_in, downloads) == ["restored.bin"]
    # Once the server is back, the blob reads whole and right.
    assert hashlib.sha256(await store.get(key)).hexdigest() == key


def write_random_file(path: Path, *, parts: int) -> Path:
    with path.open("wb") as out:
        for _ in range(parts):
            out.write(os.urandom(PART))
    return path


def names_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_a_download_broken_off_mid_body_resumes_where_it_stopped(
    s3_server: SeaweedS3, s3_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection is reset (a real RST) after 7 MiB of a 5-part object: the store
    asks for the rest with a ranged GET and the content comes out whole and right."""
    source = await asyncio.to_thread(write_random_file, tmp_path / "big.bin", parts=5)
    key = await s3_store(s3_server, s3_prefix).put_file(source)
    with CuttingProxy(int(s3_server.endpoint_url.rsplit(":", 1)[1])) as proxy:
        through_proxy = s3_store(s3_server, s3_prefix, endpoint_url=proxy.url)
        proxy.cut_after(7 * 1024 * 1024)
        caplog.set_level(logging.WARNING, logger="stylebot.storage.s3_blobs")
        target = tmp_path / "restored.bin"
        await through_proxy.get_to_file(key, target)
        assert proxy.cuts == 1
    assert await asyncio.to_thread(sha256_of_file, target) == key
    (resumed,) = [r.getMessage() for r in caplog.records if "broke off" in r.getMessage()]
    assert f"reading blob {key}" in resumed
    assert "resuming" in resumed
