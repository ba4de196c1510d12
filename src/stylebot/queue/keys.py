"""Every Redis key stylebot reads or writes, and the arq keys it touches directly.

No other module spells a key: they import it from here, so the schema below is
the whole of what a shared Redis holds for stylebot (`<id>` is a job id).

| Key | Type | What it holds (writer) |
|---|---|---|
| `stylebot:queue` | zset | arq's queue: job id -> enqueue ms (`enqueue_with_turn`) |
| `arq:job:<id>` | string | arq's job record, JSON; expires after `QUEUED_JOB_TTL_S` |
| `arq:in-progress:<id>` | string | a running job's lease, naming its worker (`JobLease`) |
| `arq:retry:<id>` | string | arq's count of a job's runs (an interrupted run gives one back) |
| `arq:result:<id>` | string | arq's result, without the job's arguments; kept a day |
| `arq:abort` | zset | arq's aborted jobs: unused (cancel is `cancel:<id>`), erasure clears it |
| `stylebot:wake` | list | one entry per enqueue; idle workers BLPOP it (64 at most) |
| `stylebot:cancel:<id>` | string | set by /cancel; workers look before and during a job |
| `stylebot:turns:arrivals` | counter | the arrival number of the next job, both lanes |
| `stylebot:turns:version` | counter | moves at each enqueue; a start is valid at the version read |
| `stylebot:turns:<lane>` | hash | job id -> "round:arrival", its fair turn (train, generate) |
| `stylebot:turns:<lane>:owners` | hash | owner -> the owner's next round |
| `stylebot:turns:<lane>:current` | string | the lane's highest round started |
| `stylebot:checkpoint:<id>` | string | a training run's latest checkpoint (blob key, step) |
| `stylebot:train-result:<id>` | hash | a finished training's result, and if it was reported |
| `stylebot:events` | stream | job events for the front ends (group `frontend`), 30 days |
| `stylebot:events:of:<id>` | set | a job's entry ids in the stream (erasure finds them) |
| `stylebot:events:indexed` | string | set once entries older than that index are indexed |
| `stylebot:events:delivery-failures:<entry>` | string | failed deliveries of one event |
| `stylebot:events:delivery-failures` | hash | the same, as kept before; deleted at start |
| `stylebot:events:delivered-parts:<entry>` | hash | parts of an event that reached the chat |
| `stylebot:revoked-blobs` | zset | blob key -> revoked ms; workers drop cached copies |
| `stylebot:admin:training-paused` | string | set while training is paused; who paused it |
| `stylebot:worker-alive:<worker>` | string | a worker's heartbeat and announcement (JSON) |
| `stylebot:worker:<worker>:health-check` | string | arq's health check, one per worker |
| `stylebot:queue:health-check` | string | arq's shared health check (workers without their own) |
| `stylebot:embedded-redis:exiting` | string | serialises exits of processes sharing one Redis |

The `arq:` keys are arq 0.28's own (its `arq.constants`, pinned in pyproject.toml);
`tests/unit/queue/test_arq_contract.py` fails when a release changes them.
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
train_result_key = _keyed("stylebot:train-result:")

EVENTS_STREAM = "stylebot:events"
EVENTS_INDEXED_MARK = "stylebot:events:indexed"
# A job's entry ids in the events stream.
job_events_key = _keyed("stylebot:events:of:")
delivery_failures_key = _keyed("stylebot:events:delivery-failures:")
# Where those counts were kept before: a hash that only ever lost fields on ack.
OLD_DELIVERY_FAILURES_KEY = "stylebot:events:delivery-failures"
delivered_parts_key = _keyed("stylebot:events:delivered-parts:")

REVOKED_BLOBS_KEY = "stylebot:revoked-blobs"
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
