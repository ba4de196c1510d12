"""Forgetting a job with a full events stream: the cost of /style delete and /forgetme
must not grow with the stream (anyone's jobs fill it).

Fills the events stream on an embedded Redis with `--entries` progress events of other
jobs plus a few of the job to forget, then times `forget_jobs` for that job: wall time,
and the front end's own CPU time (the process running this script).
Run: .venv/bin/python bench/forget_scale.py [--entries N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from stylebot.queue.connection import connect
from stylebot.queue.events import EventPublisher
from stylebot.queue.forgetting import forget_jobs
from stylebot.queue.keys import EVENTS_STREAM
from stylebot.queue.payloads import JobEvent
from stylebot.queue.redis_server import EmbeddedRedis

FORGOTTEN = "generate-forgotten"


async def fill_and_forget(url: str, entries: int) -> tuple[float, float, int]:
    redis = await connect(url)
    try:
        publisher = EventPublisher(redis)
        publisher._trim_by_age = False  # only the filling is faster this way
        for start in range(0, entries, 5000):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(start, min(entries, start + 5000)):
                    event = JobEvent(f"generate-{i:032x}", "generate", "progress", step=i % 25)
                    pipe.eval(
                        "local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[1]) "
                        "redis.call('SADD', KEYS[2], id) return id",
                        2,
                        EVENTS_STREAM,
                        f"stylebot:events:of:{event.job_id}",
                        event.to_json(),
                    )
                await pipe.execute()
        for step in range(3):
            await publisher.publish(JobEvent(FORGOTTEN, "generate", "progress", step=step))
        wall, cpu = time.perf_counter(), time.process_time()
        await forget_jobs(redis, [FORGOTTEN])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, int(await redis.xlen(EVENTS_STREAM))
    finally:
        await redis.aclose()


def main(entries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp)) as server:
        wall, cpu, left = asyncio.run(fill_and_forget(server.url, entries))
    print(
        f"forget_jobs, {entries} other entries: wall {wall * 1000:.1f} ms, "
        f"front-end CPU {cpu * 1000:.1f} ms ({left} entries left)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    main(parser.parse_args().entries)
