"""Redis connections and the job encoding shared by the front end and workers."""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

from stylebot.queue.keys import QUEUE_NAME
from stylebot.queue.redis_endpoint import RedisEndpoint

# Wakes nobody took (no worker running) are trimmed to this many.
MAX_PENDING_WAKES = 64


# How long a queued job may wait to start before its arq job key expires (arq
# then fails it, and the worker tells the user why). arq's default, one day, is
# shorter than a training pause or a long queue may last. A constant, not a
# setting: front ends set it at enqueue and workers name it in the message,
# so every process must agree. Cancels are kept as long (see `cancel_key`).
QUEUED_JOB_TTL_S = 30 * 24 * 3600


def queued_job_ttl_text() -> str:
    """The wait limit as a user reads it: "30 days"."""
    days = QUEUED_JOB_TTL_S / (24 * 3600)
    return f"{days:g} days" if days >= 1 else f"{QUEUED_JOB_TTL_S:g} s"


def serialize_job(data: dict[str, Any]) -> bytes:
    # JSON, not arq's default pickle: a job read from a shared Redis must never
    # be able to run code on a worker.
    return json.dumps(data, separators=(",", ":"), default=_failure_name).encode()


def _failure_name(value: object) -> str:
    """A failed job's result is its exception: kept as the exception's type only (its
    text may quote what the user asked; the failure event told them already). arq
    logged a traceback for every failed job when JSON refused it."""
    if isinstance(value, BaseException):
        return type(value).__name__
    raise TypeError(f"{type(value).__name__} is not JSON data")


def deserialize_job(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(data)
    return result


def redis_settings(url: str | RedisEndpoint) -> RedisSettings:
    """arq's settings for a URL (the system's CAs for rediss://) or an endpoint with
    its TLS files (`RedisEndpoint.from_settings`)."""
    settings = RedisEndpoint.of(url).arq_settings()
    settings.conn_timeout = 5
    settings.conn_retries = 10
    return settings


async def connect(url: str | RedisEndpoint) -> ArqRedis:
    return await create_pool(
        redis_settings(url),
        default_queue_name=QUEUE_NAME,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
    )
