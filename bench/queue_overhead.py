"""Queue overhead: a generation through bot core, queue and worker, against the
same engine call made directly, on the tiny model on the CPU.

Prints the median and p95 of both and of the difference, and their ratio.
Each queued run is also taken apart with timestamps (the worker's engine
call is timed in place, events carry Redis's clock in their stream ids), so
the time the queue adds is measured within one run as well, without the
noise of a second, separate generation: where it goes, phase by phase.
With --s3 the blob store is an S3 bucket on a local SeaweedFS server (as the tests
start it) instead of the data directory's blobs/.

The worker runs in a process of its own, as in every deployment (the console's local
worker is a child process too); it reports each pipeline call's start and end to the
bench over Redis. --one-process runs it on the front end's event loop instead, as
this script did before 2026-12-07: there the front end's handling of each event
takes turns with the worker's next steps on one loop, which no deployment does.
Run: .venv/bin/python bench/queue_overhead.py [--runs N] [--s3] [--one-process]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stylebot.bootstrap import open_frontend
from stylebot.bot.core.commands import Imagine
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ImagesReady, JobQueued, Notification
from stylebot.config import load_settings
from stylebot.engine.runtime import StyleEngine
from stylebot.engine.tiny_model import write_tiny_model
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import GenerateJob, JobEvent
from stylebot.queue.worker import build_worker

ME = Requester("bench", "u1", "Bench", chat_id="c1")


@contextlib.contextmanager
def blob_settings(home: Path, s3: bool) -> Iterator[dict[str, str]]:
    """No settings (the directory store), or those of a bucket on a SeaweedFS server."""
    if not s3:
        yield {}
        return
    # The S3 server the tests use: one helper, not a copy.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.s3_server import SeaweedS3

    with SeaweedS3(home) as server:
        env = server.env("bench/")
        yield {name.removeprefix("STYLEBOT_").lower(): value for name, value in env.items()}


# Where the worker process reports its pipeline calls (a bench-only key).
ENGINE_CALLS_KEY = "bench:engine-calls"


class TimedEngine:
    """The engine, with the wall-clock start and end of each pipeline call noted (and,
    in the worker's own process, pushed to Redis for the bench)."""

    def __init__(self, engine: StyleEngine, redis_url: str | None = None) -> None:
        self.engine = engine
        self.calls: list[tuple[float, float]] = []
        self.report_to = None
        if redis_url is not None:
            from redis import Redis

            self.report_to = Redis.from_url(redis_url)

    def generate_batch(self, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return self.engine.generate_batch(*args, **kwargs)
        finally:
            self.calls.append((started, time.time()))
            if self.report_to is not None:
                self.report_to.rpush(ENGINE_CALLS_KEY, json.dumps(self.calls[-1]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


PHASES = (
    ("bot core: records, enqueue", "asked", "enqueued"),
    ("worker picks the job up", "enqueued", "started"),
    ("job start to pipeline call", "started", "engine_start"),
    ("pipeline call (the direct work)", "engine_start", "engine_end"),
    ("store image, publish result", "engine_end", "finished"),
    ("front end: event, records, image", "finished", "delivered"),
)


async def _event_times(redis: Any, job_id: str) -> dict[str, float]:
    """When the job's started and finished events were written (Redis's clock)."""
    times: dict[str, float] = {}
    for entry_id, fields in await redis.xrange(EVENTS_STREAM):
        event = JobEvent.from_json(fields[b"event"])
        if event.job_id == job_id and event.kind in ("started", "finished"):
            times[event.kind] = int(entry_id.decode().split("-")[0]) / 1000
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(runs: int, s3: bool, one_process: bool) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        blob_settings(Path(tmp) / "seaweedfs", s3) as blobs,
    ):
        model = write_tiny_model(Path(tmp) / "tiny")
        overrides = {
            **blobs,
            "data_dir": str(Path(tmp) / "data"),
            "base_model": str(model),
            "default_size": 256,
            # One user asks again and again: no rate limit in the way of the measure.
            "requests_per_window": 1_000_000,
        }
        settings = load_settings(environ={}, **overrides)
        engine = StyleEngine(str(model), Path(tmp) / "cache")
        job = GenerateJob("direct", "a lighthouse", "", 1, 4, 7.5, 256, 256, ("aaaaaaaaaaaa",))
        engine.generate(job)  # warm-up

        async with open_frontend(settings) as frontend:
            done: asyncio.Queue[Notification] = asyncio.Queue()

            async def sink(note: Notification) -> None:
                if isinstance(note.reply, ImagesReady):
                    await done.put(note)

            frontend.add_sink("bench", sink)
            frontend.start_delivery()
            timed_engine = TimedEngine(engine)
            if one_process:
                worker = build_worker(
                    settings, frontend.redis_url, handle_signals=False, engine=timed_engine
                )
                task = asyncio.create_task(worker.async_run())
            else:
                child = _start_worker_process(overrides, frontend.redis_url, Path(tmp))
            direct: list[float] = []
            through_queue: list[float] = []
            phases: list[dict[str, float]] = []
            try:
                # Alternate the two so that whatever else the machine does
                # slows both alike; the first round only warms up.
                for i in range(runs + 1):
                    started = time.perf_counter()
                    engine.generate(job)
                    direct_s = time.perf_counter() - started

                    asked = time.time()
                    started = time.perf_counter()
                    queued = await frontend.bot.handle(Imagine(ME, "a lighthouse", seed=1, steps=4))
                    enqueued = time.time()
                    if not isinstance(queued, JobQueued):
                        raise SystemExit(f"the bot refused the request: {queued}")
                    await done.get()
                    queued_s = time.perf_counter() - started
                    delivered = time.time()
                    if one_process:
                        engine_start, engine_end = timed_engine.calls[-1]
                    else:
                        reported = await frontend.queue.redis.blpop([ENGINE_CALLS_KEY], 120)
                        if reported is None:
                            raise SystemExit("the worker process reported no pipeline call")
                        engine_start, engine_end = json.loads(reported[1])
                    marks = {
                        "asked": asked,
                        "enqueued": enqueued,
                        "engine_start": engine_start,
                        "engine_end": engine_end,
                        "delivered": delivered,
                        **await _event_times(frontend.queue.redis, queued.job_id),
                    }
                    if i:
                        direct.append(direct_s)
                        through_queue.append(queued_s)
                        phases.append(marks)
            finally:
                if one_process:
                    # The last "finished" event comes before arq has recorded the
                    # job: let it, so that closing does not cancel it half-way.
                    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    await worker.close()
                else:
                    child.terminate()  # SIGTERM: the worker drains and stops
                    await asyncio.to_thread(child.wait, 60)

    overhead = [q - d for q, d in zip(through_queue, direct, strict=True)]
    ms = 1000
    print(
        f"runs: {runs}, tiny model, 256x256, 4 steps, CPU, {'S3' if s3 else 'directory'} store, "
        f"worker {'on the front end loop' if one_process else 'in its own process'}"
    )
    print(f"direct engine call   median {statistics.median(direct) * ms:7.1f} ms")
    print(f"through bot + queue  median {statistics.median(through_queue) * ms:7.1f} ms")
    print(
        f"added by the queue   median {statistics.median(overhead) * ms:7.1f} ms, "
        f"p95 {percentile(overhead, 0.95) * ms:7.1f} ms (target: 20 ms, 50 ms)"
    )
    ratio = statistics.median(through_queue) / statistics.median(direct)
    print(f"ratio queue/direct (median): {ratio:.3f}")
    print("where the time goes, per queued run (median, p95 of each phase):")
    for label, begin, end in PHASES:
        spans = [m[end] - m[begin] for m in phases]
        print(
            f"  {label:<34} {statistics.median(spans) * ms:7.1f} ms "
            f"{percentile(spans, 0.95) * ms:7.1f} ms"
        )
    # The same run's total minus its own pipeline call: no second generation's noise.
    within = [(m["delivered"] - m["asked"]) - (m["engine_end"] - m["engine_start"]) for m in phases]
    print(
        f"added by the queue, within each run: median {statistics.median(within) * ms:7.1f} ms, "
        f"p95 {percentile(within, 0.95) * ms:7.1f} ms (target: 20 ms, 50 ms)"
    )


def _start_worker_process(
    overrides: dict[str, Any], redis_url: str, tmp: Path
) -> subprocess.Popen[bytes]:
    """This script again, as the worker: `--serve-worker`, its settings as JSON."""
    config = json.dumps({"settings": overrides, "redis_url": redis_url, "cache": str(tmp / "wc")})
    return subprocess.Popen(
        [sys.executable, __file__, "--serve-worker", config],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def serve_worker(config_text: str) -> None:
    """The worker process: the same settings, its own engine, timed."""
    config = json.loads(config_text)
    overrides = dict(config["settings"], data_dir=Path(config["settings"]["data_dir"]))
    settings = load_settings(environ={}, **overrides)
    engine = StyleEngine(settings.base_model, Path(config["cache"]))
    # No warm-up call here (the first round warms both sides): torch called from this
    # thread as well as the worker's device thread runs the device thread's calls at
    # half speed on two cores (two OpenMP teams), as --one-process shows.
    timed = TimedEngine(engine, config["redis_url"])
    build_worker(settings, config["redis_url"], engine=timed).run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--s3", action="store_true", help="blobs in S3 (a local SeaweedFS)")
    parser.add_argument(
        "--one-process", action="store_true", help="the worker on the front end's event loop"
    )
    parser.add_argument("--serve-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_worker:
        serve_worker(arguments.serve_worker)
    else:
        asyncio.run(main(arguments.runs, arguments.s3, arguments.one_process))
