"""`S3BlobStore`: the blob store on S3-compatible object storage (AWS S3, Cloudflare
R2, MinIO, SeaweedFS, Backblaze B2).

Same contract as `LocalBlobStore`: the object name is `<prefix><sha256>`, every read
is hashed as it streams and refused (`DamagedBlob`) when the content does not match
its name, and a `put` always uploads (an S3 PUT replaces the object whole), so putting
the right bytes again repairs a damaged object. Big content moves in parts: uploads
above `part_size` are multipart (s3transfer reads the file a part at a time),
downloads are streamed in chunks and, when the connection drops mid-way, resumed
with a ranged GET pinned to the same object version (If-Match on its ETag).

Transient failures (connection refused or reset, timeouts, throttling, 5xx) are
retried by botocore's "standard" retry mode with exponential backoff; a streamed
body that breaks is resumed here with the same backoff. After the last attempt the
caller gets `BlobStoreUnavailable` naming the store, never partial content.

boto3 is blocking: the async methods run it on a thread, as `LocalBlobStore` does
with the file system. One client, shared by the threads (boto3 clients are
thread-safe). The secret key is handed to botocore only; it is never in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from stylebot.bot.core.errors import DamagedBlob
from stylebot.storage.blob_storage import S3_SCHEME, BlobStoreUnavailable
from stylebot.storage.blobs import BlobScan, check_blob_key, sha256_of_file

if TYPE_CHECKING:
    from stylebot.config import Settings


log = logging.getLogger(__name__)

# S3's smallest part (but the last) is 5 MiB; 8 MiB is s3transfer's default too.
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_KEY = re.compile(r"[0-9a-f]{64}")
_MISSING = ("NoSuchKey", "404", "NotFound")
_CHANGED = ("PreconditionFailed", "412")
_PAST_THE_END = ("InvalidRange", "416")
# Codes that mean "not this request, try again" when they arrive mid-body.
_STREAM_ERRORS = (
    BotoConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    Urllib3Error,
    ConnectionError,
    TimeoutError,
)


class S3Location:
    """`s3://bucket/prefix`: the bucket and the object-name prefix ("" or ending in /)."""

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket[/prefix]`; `ValueError` for anything else."""
    if not url.startswith(S3_SCHEME):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"not an S3 bucket name: {bucket!r}")
    prefix = prefix.strip("/")
    return S3Location(bucket, f"{prefix}/" if prefix else "")


class S3BlobStore:
    """The `BlobStorage` port on an S3 bucket (see the module doc)."""

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "auto",
        part_size: int = DEFAULT_PART_SIZE,
        max_attempts: int = 5,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self._where = location
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.part_size = part_size
        self.max_attempts = max_attempts
        config = Config(
            region_name=region or None,
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": max_attempts},
            s3={"addressing_style": addressing_style},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            # Only where the operation requires one: R2, B2 and older MinIO or
            # SeaweedFS refuse or mishandle the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of its own: the default one is shared and not thread-safe to create.
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )
        self._client.meta.events.register("before-sign.s3.PutObject", _send_body_at_once)
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            # Parts held at once: memory stays at about this many parts.
            max_concurrency=2,
            io_chunksize=256 * 1024,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        return cls(
            parse_s3_url(settings.blob_url),
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            addressing_style=settings.s3_addressing_style,
        )

    @property
    def location(self) -> str:
        return str(self._where)

    def object_name(self, key: str) -> str:
        return self.prefix + check_blob_key(key)

    # The async port: each call on a thread.

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self.put_sync, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self.get_sync, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.exists_sync, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.delete_sync, key)

    async def put_file(self, path: Path) -> str:
        return await asyncio.to_thread(self.put_file_sync, path)

    async def get_to_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self.get_to_file_sync, key, path)

    # Blocking implementations.

    def put_sync(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        name = self.object_name(key)
        with self._unavailable_as_error("store", key):
            if len(data) < self.part_size:
                self._client.put_object(Bucket=self.bucket, Key=name, Body=data)
            else:  # multipart; BytesIO of bytes shares their buffer (no copy)
                self._client.upload_fileobj(
                    io.BytesIO(data), self.bucket, name, Config=self._transfer
                )
        return key

    def put_file_sync(self, path: Path) -> str:
        key = sha256_of_file(path)
        with self._unavailable_as_error("store", key):
            self._client.upload_file(
                str(path), self.bucket, self.object_name(key), Config=self._transfer
            )
        return key

    def get_sync(self, key: str) -> bytes:
        sink = io.BytesIO()
        self._download(key, sink)
        return sink.getvalue()

    def get_to_file_sync(self, key: str, target: Path) -> None:
        temp = target.parent / f".tmp-{secrets.token_hex(8)}"
        try:
            with open(temp, "xb") as sink:
                self._download(key, sink)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def exists_sync(self, key: str) -> bool:
        name = self.object_name(key)
        with self._unavailable_as_error("look up", key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return False
                raise
        return True

    def delete_sync(self, key: str) -> None:
        """Delete the object and, in a versioned bucket, every version of it too."""
        name = self.object_name(key)
        with self._unavailable_as_error("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=name)
            for version_id in self._versions_of(name):
                self._client.delete_object(Bucket=self.bucket, Key=name, VersionId=version_id)

    def stored_keys(self) -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        with self._unavailable_as_error("list", "every blob"):
            for page in pages:
                for item in page.get("Contents", ()):
                    name = str(item["Key"])[len(self.prefix) :]
                    if _KEY.fullmatch(name):
                        yield name

    def scan(self) -> BlobScan:
        scanned = 0
        damaged = []
        for key in self.stored_keys():
            scanned += 1
            # Deleted between listing and reading is not damage.
            with contextlib.suppress(KeyError):
                try:
                    self._download(key, _Discard())
                except DamagedBlob:
                    damaged.append(key)
        return BlobScan(scanned, tuple(damaged))

    def check_writable(self) -> None:
        probe = f"stylebot doctor probe {secrets.token_hex(16)}".encode()
        key = self.put_sync(probe)
        try:
            if self.get_sync(key) != probe:
                raise BlobStoreUnavailable(f"{self.location} returned other bytes than written")
        finally:
            self.delete_sync(key)

    # Helpers.

    def _download(self, key: str, sink: IO[bytes]) -> None:
        """Stream the object into `sink`, hashing as it comes. A request that fails has
        had botocore's retries; a body that breaks off mid-way resumes where it stopped
        (a ranged GET of the same ETag), and a replaced object starts over."""
        name = self.object_name(key)
        digest = hashlib.sha256()
        received = 0
        etag: str | None = None
        breaks = 0
        while True:
            request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
            if received:
                request |= {"Range": f"bytes={received}-", "IfMatch": etag}
            try:
                response = self._client.get_object(**request)
            except ClientError as exc:
                code = _code(exc)
                if code in _MISSING:
                    raise KeyError(key) from None
                if code in _PAST_THE_END:  # broke off after the last byte: all here
                    break
                if code not in _CHANGED:
                    raise BlobStoreUnavailable(self._failed("read", key, exc)) from exc
                # Replaced meanwhile (a repair): what was read is of the old object.
                sink.seek(0)
                sink.truncate()
                digest, received, etag = hashlib.sha256(), 0, None
                continue
            except BotoCoreError as exc:
                raise BlobStoreUnavailable(self._failed("read", key, exc)) from exc
            etag = etag or response.get("ETag")
            try:
                for chunk in response["Body"].iter_chunks(_READ_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                    received += len(chunk)
                break
            except (*_STREAM_ERRORS, BotoCoreError) as exc:
                breaks += 1
                if breaks >= self.max_attempts:
                    raise BlobStoreUnavailable(self._failed("read", key, exc)) from exc
                if etag is None:  # no version to pin a resumed range to: start over
                    sink.seek(0)
                    sink.truncate()
                    digest, received = hashlib.sha256(), 0
                delay = min(8.0, 0.25 * 2**breaks)
                log.warning(
                    "reading blob %s from %s broke off after %d bytes (%s); resuming in %.1f s",
                    key,
                    self.location,
                    received,
                    type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
        if digest.hexdigest() != key:
            raise DamagedBlob(key)

    def _versions_of(self, name: str) -> list[str]:
        """Version ids of exactly `name`; none where versions cannot be listed (R2)."""
        try:
            listed = self._client.list_object_versions(Bucket=self.bucket, Prefix=name)
        except ClientError as exc:
            if _code(exc) in ("NotImplemented", "501", "AccessDenied"):
                return []
            raise
        entries = [*listed.get("Versions", ()), *listed.get("DeleteMarkers", ())]
        return [
            str(entry["VersionId"])
            for entry in entries
            if entry["Key"] == name and entry.get("VersionId") not in (None, "null")
        ]

    @contextlib.contextmanager
    def _unavailable_as_error(self, what: str, key: str) -> Iterator[None]:
        """botocore's errors, after its retries, as one error naming the store."""
        try:
            yield
        except ClientError as exc:
            raise BlobStoreUnavailable(self._failed(what, key, exc)) from exc
        except (*_STREAM_ERRORS, BotoCoreError) as exc:
            raise BlobStoreUnavailable(self._failed(what, key, exc)) from exc

    def _failed(self, what: str, key: str, exc: BaseException) -> str:
        return f"could not {what} blob {key} in {self.location}: {type(exc).__name__}: {exc}"


def _send_body_at_once(request: Any, **_: Any) -> None:
    """botocore sends "Expect: 100-continue" with every PutObject body and waits for the
    server's go-ahead before the body: a round trip per store, on the way of every
    result (issue 19). A single PUT is under `part_size` (parts go by UploadPart, which
    keeps it): sending such a body at once costs nothing when the server refuses."""
    del request.headers["Expect"]


class _Discard(io.BytesIO):
    """A sink that keeps nothing: `scan` only needs the hash."""

    def write(self, data: Any, /) -> int:
        return len(data)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
