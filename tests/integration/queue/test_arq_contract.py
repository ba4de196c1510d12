"""What stylebot relies on in arq beyond its public API, pinned: fails the moment a
release changes it (docs/architecture.md, "The queue and arq", says why we rely on it).

The front end writes arq's job records itself (`stylebot.queue.turns`, to give each
job its fair turn in the same script), and the worker overrides arq's `start_jobs`,
`finish_job`, `finish_failed_job`, `handle_sig`, `close` and `_poll_iteration`. When a
test here fails after an arq upgrade, read the changed arq code against those
overrides before changing anything here.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import logging
import sys
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from arq import constants, func, jobs
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import Worker

from stylebot.log_privacy import _ARQ_START_LINE
from stylebot.queue.connection import deserialize_job, serialize_job
from stylebot.queue.forgetting import result_without_arguments
from stylebot.queue.keys import (
    ARQ_ABORTED_JOBS_KEY,
    QUEUE_HEALTH_KEY,
    QUEUE_NAME,
    arq_in_progress_key,
    arq_job_key,
    arq_result_key,
    arq_retry_key,
    worker_health_key,
)
from stylebot.queue.outage_worker import OutageTolerantWorker
from stylebot.queue.recovery import give_back_try
from stylebot.queue.turns import enqueue_with_turn
from stylebot.queue.worker import StyleWorker

ROOT = Path(__file__).resolve().parents[3]
PINNED = "0.28.0"

# sha256 (first 16 hex digits) of the source of each arq function whose behaviour the
# overrides and the enqueue script reproduce or extend. Recompute after reading the diff.
ARQ_SOURCES = {
    Worker.__init__: "edfb0cd7e05e77cf",
    Worker.main: "45ca1591c9717466",
    Worker._poll_iteration: "f8d39d823a0a59f2",
    Worker.start_jobs: "b45797cfa40bed7f",
    Worker.run_job: "589a19059ff84ee7",
    Worker.finish_job: "903f09c92830d3fd",
    Worker.finish_failed_job: "3e16087f318a7acf",
    Worker.handle_sig: "985ff7ba01aa8f04",
    Worker.close: "5bcc9cb356680829",
    # Its health key's lifetime is how `stylebot status` and the metrics count workers.
    Worker.record_health: "108f4b8686c9402d",
    # Reproduced by `stylebot.queue.turns` (the job record and queue entry, with a turn).
    ArqRedis.enqueue_job: "7da8706a747c1171",
    jobs.serialize_job: "1fc854cc50e16e5c",
    jobs.deserialize_job_raw: "f330dfaff8e2160f",
    jobs.serialize_result: "709b9d4709d5aa08",
}

# The attributes of arq's Worker that StyleWorker and OutageTolerantWorker read or set,
# and their types on a new worker (no on_shutdown, not yet running).
WORKER_STATE: dict[str, type] = {
    "tasks": dict,
    "job_counter": int,
    "max_jobs": int,
    "max_tries": int,
    "allow_pick_jobs": bool,
    "main_task": type(None),
    "on_stop": type(None),
    "on_shutdown": type(None),
    "in_progress_timeout_s": int,
    "_handle_signals": bool,
    "_pool": ArqRedis,
    "health_check_key": str,
    "queue_name": str,
    "ctx": dict,
}


async def _noop(ctx: dict[str, Any]) -> None:
    """A job function for workers that never run one."""


def test_arq_is_pinned_to_the_version_this_contract_was_checked_against() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"arq=={PINNED}" in project["project"]["dependencies"]
    assert f"arq=={PINNED}\n" in (ROOT / "requirements.lock").read_text()
    assert metadata.version("arq") == PINNED


@pytest.mark.parametrize("function", list(ARQ_SOURCES), ids=lambda f: f.__qualname__)
def test_the_arq_code_we_extend_is_the_code_we_read(function: Callable[..., Any]) -> None:
    source = inspect.getsource(function)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == ARQ_SOURCES[function], (
        f"arq's {function.__qualname__} changed: check stylebot's use of it"
    )


# Every method of arq's Worker that ours override (their __init__ aside, whose arq source
# is hashed above and which they call with arq's keywords).
OVERRIDES: list[tuple[type[Worker], str]] = [
    (StyleWorker, "start_jobs"),
    (StyleWorker, "finish_job"),
    (StyleWorker, "finish_failed_job"),
    (StyleWorker, "handle_sig"),
    (OutageTolerantWorker, "_poll_iteration"),
    (OutageTolerantWorker, "close"),
]
OUR_WORKERS = (StyleWorker, OutageTolerantWorker)


def test_every_override_of_arq_is_in_this_contract() -> None:
    """A method added to our workers under a name arq's Worker has is an override too:
    it must be read against arq's code and listed here."""
    overridden = {
        (ours, name)
        for ours in OUR_WORKERS
        for name, value in vars(ours).items()
        if name != "__init__" and callable(value) and callable(getattr(Worker, name, None))
    }
    assert overridden == set(OVERRIDES)
    assert {getattr(Worker, name) for _ours, name in OVERRIDES} <= set(ARQ_SOURCES)


def test_every_worker_attribute_ours_use_is_in_this_contract() -> None:
    """`self.X` in our workers' source, X an attribute arq's Worker sets: in WORKER_STATE."""
    fresh = Worker(functions=[func(_noop, name="noop")], redis_pool=None, handle_signals=False)
    arqs = set(vars(fresh))
    used = set()
    for ours in OUR_WORKERS:
        tree = ast.parse(inspect.getsource(sys.modules[ours.__module__]))
        used |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        }
    assert "tasks" in used & arqs  # the scan sees them
    assert used & arqs <= set(WORKER_STATE)


@pytest.mark.parametrize(("ours", "name"), OVERRIDES)
def test_the_overrides_take_what_arq_passes(ours: type[Worker], name: str) -> None:
    """arq calls these itself: our override must accept exactly arq's parameters."""
    assert name in vars(ours), f"{ours.__name__} no longer overrides {name}"
    theirs = inspect.signature(getattr(Worker, name))
    mine = inspect.signature(getattr(ours, name))
    assert list(mine.parameters) == list(theirs.parameters)


async def test_the_worker_state_the_overrides_read_is_there(redis: ArqRedis) -> None:
    worker = Worker(functions=[func(_noop, name="noop")], redis_pool=redis, handle_signals=False)
    state = {name: type(getattr(worker, name)) for name in WORKER_STATE}
    assert state == WORKER_STATE


def test_the_keys_are_arqs() -> None:
    assert (
        constants.job_key_prefix,
        constants.in_progress_key_prefix,
        constants.retry_key_prefix,
        constants.result_key_prefix,
        constants.abort_jobs_ss,
        constants.health_check_key_suffix,
    ) == ("arq:job:", "arq:in-progress:", "arq:retry:", "arq:result:", "arq:abort", ":health-check")
    assert [
        arq_job_key("j"),
        arq_in_progress_key("j"),
        arq_retry_key("j"),
        arq_result_key("j"),
    ] == [
        "arq:job:j",
        "arq:in-progress:j",
        "arq:retry:j",
        "arq:result:j",
    ]
    assert ARQ_ABORTED_JOBS_KEY == "arq:abort"
    assert QUEUE_HEALTH_KEY == "stylebot:queue:health-check"
    assert worker_health_key("host-1") == "stylebot:worker:host-1:health-check"


async def test_arq_reads_a_job_queued_our_way(redis: ArqRedis) -> None:
    payload = {"job_id": "j1", "prompt": "a small boat"}
    turn = await enqueue_with_turn(redis, "generate", "generate", "j1", "test:ada", payload)
    assert turn is not None
    job = Job("j1", redis, _queue_name=QUEUE_NAME, _deserializer=deserialize_job)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None
    # JSON has no tuples: arq hands the job its arguments as a list.
    assert (info.function, info.args, info.kwargs) == ("generate", [payload], {})
    assert info.job_try is None
    # Scored by its enqueue time: arq takes it once that is past.
    assert await redis.zscore(QUEUE_NAME, "j1") == int(info.enqueue_time.timestamp() * 1000)
    # The worker reads a queued job's function from the raw record (`StyleWorker._describe`).
    raw = await redis.get(arq_job_key("j1"))
    assert deserialize_job(raw)["f"] == "generate"
    assert jobs.deserialize_job_raw(raw, deserializer=deserialize_job)[:3] == (
        "generate",
        [payload],  # JSON has no tuples
        {},
    )


async def test_arqs_own_worker_runs_a_job_queued_our_way(
    redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """arq's unmodified Worker runs it: the lease, try count and ctx we rely on included."""
    seen: dict[str, Any] = {}

    async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        job_id = ctx["job_id"]
        seen["ctx"] = {key: ctx[key] for key in ("job_id", "job_try")}
        seen["redis"] = ctx["redis"] is redis
        # The lease: arq holds the in-progress key for `in_progress_timeout_s`.
        seen["lease_ms"] = await redis.pttl(arq_in_progress_key(job_id))
        seen["tries"] = int(await redis.get(arq_retry_key(job_id)))
        await give_back_try(redis, job_id)  # what an interrupted run does
        seen["tries_given_back"] = int(await redis.get(arq_retry_key(job_id)))
        return {"made": payload["prompt"]}

    payload = {"job_id": "j1", "prompt": "a small boat"}
    await enqueue_with_turn(redis, "generate", "generate", "j1", None, payload)
    worker = Worker(
        functions=[func(generate, name="generate")],
        redis_pool=redis,
        queue_name=QUEUE_NAME,
        burst=True,
        handle_signals=False,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        poll_delay=0.01,
    )
    worker.in_progress_timeout_s = 7.0  # as `build_worker` sets the lease
    with caplog.at_level(logging.INFO, logger="arq.worker"):
        await worker.main()
    assert seen == {
        "ctx": {"job_id": "j1", "job_try": 1},
        "redis": True,
        "lease_ms": pytest.approx(7000, abs=1000),
        "tries": 1,
        "tries_given_back": 0,
    }
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    # The start line `log_privacy` blanks the arguments of is arq's.
    assert any(r.msg == _ARQ_START_LINE for r in caplog.records if r.name == "arq.worker")
    # The result arq keeps, read by arq, once the arguments are taken out of it.
    raw = await redis.get(arq_result_key("j1"))
    stripped = result_without_arguments(raw)
    assert stripped is not None
    result = jobs.deserialize_result(stripped, deserializer=deserialize_job)
    assert (result.result, result.args, result.success) == ({"made": "a small boat"}, [], True)
    assert await redis.zcard(QUEUE_NAME) == 0
    assert not await redis.exists(arq_job_key("j1"), arq_in_progress_key("j1"))
