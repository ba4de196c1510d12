"""Every Redis key stylebot reads or writes, and the arq keys it touches directly.

No other module spells a key: they import it from here, so these are the whole of
what a shared Redis holds for stylebot. Each key's type, writer, lifetime and purpose:
docs/architecture.md, "The Redis key schema".

The `arq:` keys are arq 0.28's own (its `arq.constants`, pinned in pyproject.toml);
`tests/integration/queue/test_arq_contract.py` fails when a release changes them.
"""

from __future__ import annotations

from collections.abc import Callable

from arq import constants as _arq

from stylebot.queue.fairness import Lane


def _keyed(prefix: str) -> Callable[[str], str]:
    """A family of keys: `prefix` and a job id (a worker's, an event entry's...)."""
    return prefix.__add__


QUEUE_NAME = "stylebot:queue"
# A front end pushes here after enqueueing; an idle worker blocks on it
# (BLPOP) instead of polling, so it starts a job within a millisecond or two.
WAKE_KEY = "stylebot:wake"
# Set by /cancel; a worker drops the job when it sees it.
cancel_key = _keyed("stylebot:cancel:")

arq_job_key = _keyed(_arq.job_key_prefix)
arq_in_progress_key = _keyed(_arq.in_progress_key_prefix)
arq_retry_key = _keyed(_arq.retry_key_prefix)
arq_result_key = _keyed(_arq.result_key_prefix)
ARQ_ABORTED_JOBS_KEY = _arq.abort_jobs_ss
ARQ_HEALTH_CHECK_SUFFIX = _arq.health_check_key_suffix
# arq's shared health-check key for the queue: written by whichever worker checked in last.
QUEUE_HEALTH_KEY = QUEUE_NAME + ARQ_HEALTH_CHECK_SUFFIX
WORKER_HEALTH_PREFIX = "stylebot:worker:"

TURN_ARRIVALS_KEY = "stylebot:turns:arrivals"
TURNS_VERSION_KEY = "stylebot:turns:version"

checkpoint_key = _keyed("stylebot:checkpoint:")
# A job's finished event (any kind of job), kept until arq has recorded the job
# (`EventPublisher.publish_end`). Named when only training's was kept: renaming it would
# break the Redis ACLs operators already wrote for workers.
job_end_key = _keyed("stylebot:train-result:")

EVENTS_STREAM = "stylebot:events"
EVENTS_INDEXED_MARK = "stylebot:events:indexed"
# A job's entry ids in the events stream.
job_events_key = _keyed("stylebot:events:of:")
delivery_failures_key = _keyed("stylebot:events:delivery-failures:")
# Where those counts were kept before: a hash that only ever lost fields on ack.
OLD_DELIVERY_FAILURES_KEY = "stylebot:events:delivery-failures"
delivered_parts_key = _keyed("stylebot:events:delivered-parts:")

REVOKED_BLOBS_KEY = "stylebot:revoked-blobs"
# A small blob a worker just stored, for the front end to read without the blob store.
fresh_blob_key = _keyed("stylebot:fresh-blob:")
TRAINING_PAUSED_KEY = "stylebot:admin:training-paused"
EMBEDDED_REDIS_EXIT_LOCK_KEY = "stylebot:embedded-redis:exiting"
presence_key = _keyed("stylebot:worker-alive:")


def turns_key(lane: Lane) -> str:
    return f"stylebot:turns:{lane}"


def owner_rounds_key(lane: Lane) -> str:
    return f"stylebot:turns:{lane}:owners"


def current_round_key(lane: Lane) -> str:
    return f"stylebot:turns:{lane}:current"


def worker_health_key(worker_name: str) -> str:
    """The health-check key of one worker (e.g. `host-pid`), so each shows separately."""
    return f"{WORKER_HEALTH_PREFIX}{worker_name}{ARQ_HEALTH_CHECK_SUFFIX}"
