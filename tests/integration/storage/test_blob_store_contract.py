"""The `BlobStorage` contract, the same tests on every adapter: the directory store,
the S3 store (against a real SeaweedFS server) and the in-memory fake.

Each store comes with `damage` (flip one byte of the stored copy, for real: on disk,
in the bucket, in the dict) and `copies` (how many stored copies of a blob exist
anywhere: files, object versions, dict entries), so the tests can check that a read
refuses damaged content and that a delete leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.fakes.memory import InMemoryBlobStore
from tests.support.damage import flip_byte
from tests.support.s3_server import SeaweedS3

from stylebot.bot.core.errors import DamagedBlob
from stylebot.config import load_settings
from stylebot.engine.worker_cache import BlobCache
from stylebot.queue.damaged_inputs import DamagedInput, fetch_style_weights
from stylebot.storage.blob_storage import BlobStorage, open_blob_store
from stylebot.storage.blobs import LocalBlobStore, sha256_of_file
from stylebot.storage.s3_blobs import S3BlobStore, parse_s3_url

# The smallest part S3 allows; a "big" blob below is several parts.
PART = 5 * 1024 * 1024

HOSTILE_KEYS = [
    "../x",
    "../" + "a" * 61,
    "/etc/passwd",
    "A" * 64,  # uppercase
    "a" * 63,  # short
    "a" * 65,  # long
    "g" * 64,  # not hex
    "a" * 63 + "\n",
    "",
]


@dataclass
class Contract:
    store: BlobStorage
    damage: Callable[[str], None]
    copies: Callable[[str], int]


def s3_store(
    server: SeaweedS3, prefix: str, *, max_attempts: int = 3, endpoint_url: str | None = None
) -> S3BlobStore:
    env = server.env(prefix)
    return S3BlobStore(
        parse_s3_url(env["STYLEBOT_BLOB_URL"]),
        endpoint_url=endpoint_url or server.endpoint_url,
        region="us-east-1",
        access_key_id=env["STYLEBOT_S3_ACCESS_KEY_ID"],
        secret_access_key=env["STYLEBOT_S3_SECRET_ACCESS_KEY"],
        addressing_style="path",
        part_size=PART,
        max_attempts=max_attempts,
    )


def _local(tmp_path: Path) -> Contract:
    store = LocalBlobStore(tmp_path / "blobs")

    def copies(key: str) -> int:
        return sum(1 for p in store.root.rglob("*") if p.is_file() and key in p.name)

    return Contract(store, lambda key: flip_byte(store.path(key)), copies)


def _memory() -> Contract:
    store = InMemoryBlobStore()

    def damage(key: str) -> None:
        data = bytearray(store.blobs[key])
        data[len(data) // 2] ^= 0xFF
        store.blobs[key] = bytes(data)

    return Contract(store, damage, lambda key: int(key in store.blobs))


def _s3(server: SeaweedS3, prefix: str) -> Contract:
    # The bucket is versioned: "every copy" includes the versions an overwrite leaves.
    store = s3_store(server, prefix)
    raw = server.client()
    bucket = server.BUCKET

    def damage(key: str) -> None:
        name = store.object_name(key)
        data = bytearray(raw.get_object(Bucket=bucket, Key=name)["Body"].read())
        data[len(data) // 2] ^= 0xFF
        raw.put_object(Bucket=bucket, Key=name, Body=bytes(data))

    def copies(key: str) -> int:
        listed = raw.list_object_versions(Bucket=bucket, Prefix=store.object_name(key))
        return len(listed.get("Versions", ()))

    return Contract(store, damage, copies)


@pytest.fixture(params=["local", "s3", "memory"])
def contract(request: pytest.FixtureRequest, tmp_path: Path) -> Contract:
    if request.param == "local":
        return _local(tmp_path)
    if request.param == "s3":
        server: SeaweedS3 = request.getfixturevalue("s3_server")
        return _s3(server, request.getfixturevalue("s3_prefix"))
    return _memory()


async def test_round_trip_and_the_key_is_the_sha256(contract: Contract) -> None:
    store = contract.store
    data = b"\x89PNG fake image bytes" * 100
    key = await store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert await store.get(key) == data
    assert await store.exists(key)


async def test_empty_content_is_a_blob_too(contract: Contract) -> None:
    key = await contract.store.put(b"")
    assert await contract.store.get(key) == b""


async def test_same_content_twice_is_one_blob(contract: Contract) -> None:
    store = contract.store
    first = await store.put(b"same")
    second = await store.put(b"same")
    other = await store.put(b"different")
    assert first == second
    assert other != first
    await store.delete(first)
    assert not await store.exists(second)
    assert await store.get(other) == b"different"


async def test_missing_blobs(contract: Contract, tmp_path: Path) -> None:
    store = contract.store
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not await store.exists(missing)
    with pytest.raises(KeyError):
        await store.get(missing)
    with pytest.raises(KeyError):
        await store.get_to_file(missing, tmp_path / "never-written")
    await store.delete(missing)  # no-op, no error
    key = await store.put(b"x")
    await store.delete(key)
    await store.delete(key)
    assert not await store.exists(key)
    with pytest.raises(KeyError):
        await store.get(key)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
async def test_hostile_keys_are_rejected(contract: Contract, key: str) -> None:
    store = contract.store
    with pytest.raises(ValueError, match="blob key"):
        await store.get(key)
    with pytest.raises(ValueError, match="blob key"):
        await store.exists(key)
    with pytest.raises(ValueError, match="blob key"):
        await store.delete(key)


async def test_a_damaged_blob_is_refused_naming_its_key_and_a_put_repairs_it(
    contract: Contract, tmp_path: Path
) -> None:
    store = contract.store
    data = os.urandom(64 * 1024)
    key = await store.put(data)
    contract.damage(key)
    with pytest.raises(DamagedBlob, match=key) as raised:
        await store.get(key)
    assert raised.value.key == key
    target = tmp_path / "copy"
    with pytest.raises(DamagedBlob, match=key):
        await store.get_to_file(key, target)
    # Neither the target nor a temporary file: damaged content never lands on disk.
    assert _names_in(tmp_path) - {"blobs"} == set()

    # The worker's handling of a damaged input still names the store to restore, and
    # keeps no copy of it.
    cache = BlobCache(tmp_path / "cache")
    with pytest.raises(DamagedInput, match=f"restore {store.location}"):
        await fetch_style_weights(store, cache, "loras", key, 7, "sturdy")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]

    assert await store.put(data) == key
    assert await store.get(key) == data


async def test_a_scan_lists_exactly_the_damaged_blobs(contract: Contract) -> None:
    store = contract.store
    keys = [await store.put(f"blob {n}".encode() * 100) for n in range(5)]
    for damaged in keys[1], keys[3]:
        contract.damage(damaged)
    assert sorted(store.stored_keys()) == sorted(keys)
    found = store.scan()
    assert found.scanned == 5
    assert sorted(found.damaged) == sorted([keys[1], keys[3]])


async def test_delete_reaches_every_copy_and_is_idempotent(contract: Contract) -> None:
    store = contract.store
    data = b"the weights of a deleted style" * 1000
    key = await store.put(data)
    # Stored twice and damaged once: in a versioned bucket, three versions now.
    await store.put(data)
    contract.damage(key)
    assert contract.copies(key) == (3 if isinstance(store, S3BlobStore) else 1)
    await store.delete(key)
    assert contract.copies(key) == 0
    assert not await store.exists(key)
    await store.delete(key)
    assert contract.copies(key) == 0


async def test_big_blobs_stream_through_in_parts(contract: Contract, tmp_path: Path) -> None:
    """A file several parts long goes in and comes out without being held whole."""
    store = contract.store
    source = tmp_path / "checkpoint.bin"
    size = 5 * PART + 123
    with source.open("wb") as out:
        for _ in range(5):
            out.write(os.urandom(PART))
        out.write(os.urandom(123))
    target = tmp_path / "restored.bin"

    tracemalloc.start()
    try:
        key = await store.put_file(source)
        await store.get_to_file(key, target)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert key == sha256_of_file(source)
    assert sha256_of_file(target) == key
    assert target.stat().st_size == size
    if not isinstance(store, InMemoryBlobStore):  # the fake holds everything in a dict
        assert peak < 3 * PART, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB blob"
    if isinstance(store, S3BlobStore):  # uploaded as a multipart object
        head = store._client.head_object(Bucket=store.bucket, Key=store.object_name(key))
        assert head["ETag"].strip('"').endswith("-6"), head["ETag"]


async def test_the_store_proves_it_is_writable(contract: Contract) -> None:
    contract.store.check_writable()
    assert list(contract.store.stored_keys()) == [], "the probe is deleted again"


def test_the_blob_url_chooses_the_store(tmp_path: Path) -> None:
    default = open_blob_store(load_settings(environ={}, data_dir=tmp_path))
    assert isinstance(default, LocalBlobStore)
    assert default.location == str(tmp_path / "blobs")
    elsewhere = load_settings(environ={"STYLEBOT_BLOB_URL": str(tmp_path / "elsewhere")})
    assert open_blob_store(elsewhere).location == str(tmp_path / "elsewhere")
    bucket = open_blob_store(load_settings(environ={"STYLEBOT_BLOB_URL": "s3://blobs-1/a/b"}))
    assert isinstance(bucket, S3BlobStore)
    assert (bucket.bucket, bucket.prefix, bucket.location) == (
        "blobs-1",
        "a/b/",
        "s3://blobs-1/a/b/",
    )


def _names_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}
