"""`LocalBlobStore`'s details on disk (the contract: test_blob_store_contract.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

import pytest
from tests.integration.storage.test_blob_store_contract import HOSTILE_KEYS
from tests.support.damage import flip_byte

from stylebot.bot.core.errors import DamagedBlob, StorageFull
from stylebot.storage.blobs import LocalBlobStore, check_blob_key, sha256_of_file


# The contract every store keeps is in test_blob_store_contract.py; these are the
# directory store's own details.
@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_never_become_paths(tmp_path: Path, key: str) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="blob key"):
        store.path(key)
    with pytest.raises(ValueError, match="blob key"):
        check_blob_key(key)


async def test_a_file_outside_the_root_cannot_be_read_or_deleted(tmp_path: Path) -> None:
    secret = tmp_path / ("b" * 64)
    secret.write_bytes(b"secret")
    store = LocalBlobStore(tmp_path / "blobs")
    for key in ("../" + "b" * 64, "../../" + "b" * 64, str(secret)):
        with pytest.raises(ValueError, match="blob key"):
            await store.get(key)
        with pytest.raises(ValueError, match="blob key"):
            await store.delete(key)
    assert secret.read_bytes() == b"secret"


async def test_files_are_sharded_by_key_prefix(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = LocalBlobStore(root)
    key = await store.put(b"sharded")
    expected = root / key[:2] / key[2:4] / key
    assert store.path(key) == expected
    assert expected.read_bytes() == b"sharded"
    assert [p for p in root.rglob("*") if p.is_file()] == [expected]


async def test_putting_existing_content_does_not_rewrite_the_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = await store.put(b"once")
    before = os.stat(store.path(key))
    await store.put(b"once")
    after = os.stat(store.path(key))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_writes_go_through_a_temp_file_that_is_never_named_like_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"atomic" * 1000
    key = hashlib.sha256(data).hexdigest()
    seen: list[tuple[str, bool, bytes]] = []
    real_replace = os.replace

    def watching_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # At rename time the whole content is in the temp file, and the final
        # name does not exist yet: nobody can have seen a partial blob.
        seen.append((Path(src).name, Path(dst).exists(), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    assert await store.put(data) == key

    ((temp_name, target_existed, temp_content),) = seen
    assert temp_name.startswith(".")
    assert re.fullmatch(r"[0-9a-f]{64}", temp_name) is None
    assert not target_existed
    assert temp_content == data
    assert sorted(p.name for p in store.path(key).parent.iterdir()) == [key]


async def test_a_write_that_fails_leaves_no_blob_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"doomed"
    key = hashlib.sha256(data).hexdigest()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageFull, match="No space"):  # a full disk is StorageFull
        await store.put(data)
    monkeypatch.undo()

    assert not await store.exists(key)
    assert list(store.path(key).parent.iterdir()) == []
    assert await store.put(data) == key
    assert await store.get(key) == data


async def test_a_leftover_temp_file_is_not_a_blob(tmp_path: Path) -> None:
    """What a crash between write and rename leaves behind is invisible to readers."""
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"content"
    key = hashlib.sha256(data).hexdigest()
    store.path(key).parent.mkdir(parents=True)
    (store.path(key).parent / ".tmp-0123456789abcdef").write_bytes(data[:3])

    assert not await store.exists(key)
    assert await store.put(data) == key
    assert await store.get(key) == data


async def test_concurrent_puts_of_the_same_content_agree(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(256 * 1024)
    keys = await asyncio.gather(*(store.put(data) for _ in range(16)))
    assert set(keys) == {hashlib.sha256(data).hexdigest()}
    assert await store.get(keys[0]) == data
    assert [p.name for p in store.path(keys[0]).parent.iterdir()] == [keys[0]]


def test_sync_methods_share_the_store_with_async_ones(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    key = store.put_sync(b"from a worker thread")
    assert asyncio.run(store.get(key)) == b"from a worker thread"
    assert store.get_sync(key) == b"from a worker thread"
    with pytest.raises(KeyError):
        store.get_sync(hashlib.sha256(b"nothing").hexdigest())


async def test_a_damaged_blob_is_an_error_naming_its_key_never_its_bytes(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(64 * 1024)
    key = await store.put(data)
    flip_byte(store.path(key))
    with pytest.raises(DamagedBlob, match=key) as raised:
        await store.get(key)
    assert raised.value.key == key
    with pytest.raises(DamagedBlob, match=key):
        store.get_sync(key)


async def test_putting_the_right_bytes_again_repairs_a_damaged_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"the weights of a style" * 500
    key = await store.put(data)
    flip_byte(store.path(key), offset=0)
    assert await store.put(data) == key
    assert await store.get(key) == data
    assert [p.name for p in store.path(key).parent.iterdir()] == [key]


async def test_a_scan_lists_exactly_the_damaged_blobs(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    keys = [await store.put(f"blob {n}".encode() * 100) for n in range(5)]
    for damaged in keys[1], keys[3]:
        flip_byte(store.path(damaged))
    (store.path(keys[0]).parent / ".tmp-0123456789abcdef").write_bytes(b"partial")
    assert sorted(store.stored_keys()) == sorted(keys)
    found = store.scan()
    assert found.scanned == 5
    assert sorted(found.damaged) == sorted([keys[1], keys[3]])


def test_files_are_hashed_in_chunks_that_add_up_to_the_content(tmp_path: Path) -> None:
    path = tmp_path / "big"
    data = os.urandom(3 * 1024 * 1024 + 17)  # spans several chunks and a partial one
    path.write_bytes(data)
    assert sha256_of_file(path) == hashlib.sha256(data).hexdigest()
