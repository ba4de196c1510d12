"""Checks a process makes before it starts anything, each failing with one line.

A process that cannot work (a data directory it cannot write, a Redis it cannot
reach, a base model that is not there) says so in one line naming the problem
and what to do, and exits 2, instead of starting half-way and dying with a
traceback (or worse, taking commands it can never carry out).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from pathlib import Path

import redis

from stylebot.config import Settings
from stylebot.disk_space import MIB, free_bytes, free_text
from stylebot.queue.redis_endpoint import RedisEndpoint, connection_problem
from stylebot.storage.full import is_storage_full

log = logging.getLogger(__name__)

# How long a start-up check waits for a Redis that does not answer.
REDIS_CHECK_TIMEOUT_S = 5.0
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".bin", ".pt", ".pth")


class StartupError(RuntimeError):
    """This process cannot start; the one-line message says why and what to do."""


def check_data_dir(settings: Settings) -> None:
    """The data directory is a directory this process can write in (made if missing)."""
    path = settings.data_dir
    where = f"the data directory {path}"
    fix = "set STYLEBOT_DATA_DIR to a directory this user can write"
    if path.exists() and not path.is_dir():
        raise StartupError(f"{where} is a file, not a directory: {fix}")
    probe = path / f".stylebot-write-check-{secrets.token_hex(4)}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        if is_storage_full(exc):
            raise StartupError(f"{where} is on a full disk: free space there, or {fix}") from None
        if exc.errno == errno.ENOTDIR:
            raise StartupError(f"{where} is inside a file, not a directory: {fix}") from None
        reason = "read-only" if exc.errno == errno.EROFS else "not writable"
        raise StartupError(f"{where} is {reason} ({exc.strerror}): {fix}") from None


def check_blob_store(settings: Settings) -> None:
    """Object storage answers and takes a write (a probe blob, deleted again), so that a
    wrong endpoint, bucket or key stops the process now, not its first job. A directory
    store is the data directory's (`check_data_dir`) or the operator's own path."""
    from stylebot.storage.blob_storage import BlobStoreUnavailable, is_s3_url, open_blob_store

    if not is_s3_url(settings.blob_url):
        return
    try:
        open_blob_store(settings).check_writable()
    except BlobStoreUnavailable as exc:
        raise StartupError(
            f"the blob store cannot be used: {exc}: fix STYLEBOT_BLOB_URL or the "
            "STYLEBOT_S3_* settings (`stylebot doctor` checks them)"
        ) from None


def warn_if_disk_low(settings: Settings) -> None:
    """One warning line when the data directory's disk is below `disk_low_free_mb`."""
    if not settings.disk_low_free_mb or not settings.data_dir.is_dir():
        return
    free = free_bytes(settings.data_dir)
    if free < settings.disk_low_free_mb * MIB:
        log.warning(
            "the data directory %s has %s free, below STYLEBOT_DISK_LOW_FREE_MB=%d: "
            "free space, or uploads and results will be refused once it is full",
            settings.data_dir,
            free_text(free),
            settings.disk_low_free_mb,
        )


def check_redis_reachable(endpoint: RedisEndpoint) -> None:
    """A configured Redis answers PING (the embedded one is started, not checked); one
    line on what is wrong when not (unreachable, TLS, password: `connection_problem`)."""
    client = endpoint.client(
        socket_timeout=REDIS_CHECK_TIMEOUT_S, socket_connect_timeout=REDIS_CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupError(
            f"{connection_problem(exc, endpoint)} (fix REDIS_URL or its TLS settings; "
            "unset: the embedded Redis)"
        ) from None
    finally:
        client.close()


def check_base_model(settings: Settings) -> None:
    """The base model a worker loads exists, when it names a local path.

    A hub id (`org/name`) is left to the loader: it may be downloaded or cached.
    """
    model = settings.model
    if not settings.base_model:
        if not (settings.tiny_model_dir / "model_index.json").is_file():
            raise StartupError(
                f"no base model: STYLEBOT_BASE_MODEL is unset and there is no demo model at "
                f"{settings.tiny_model_dir}: set STYLEBOT_BASE_MODEL, or run "
                f"`stylebot model tiny {settings.tiny_model_dir}`"
            )
        return
    if os.path.exists(model) or not _names_a_local_path(model):
        return
    raise StartupError(
        f"the base model STYLEBOT_BASE_MODEL={model} does not exist: point it at a diffusers "
        "folder or a .safetensors file, or use a hub id (org/name)"
    )


def _names_a_local_path(model: str) -> bool:
    """True for what can only be a path: absolute, ./ ~ or a checkpoint file name;
    `org/name` could be a hub id."""
    path = Path(model)
    return (
        path.is_absolute()
        or model.startswith((".", "~"))
        or path.suffix.lower() in _CHECKPOINT_SUFFIXES
        or len(path.parts) > 2
    )
