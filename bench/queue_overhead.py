"""Queue overhead: a generation through bot core, queue and worker, against the
same engine call made directly, on the tiny model on the CPU.

Prints the median and p95 of both and of the difference, and their ratio.
Run: .venv/bin/python bench/queue_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from stylebot.bootstrap import open_frontend
from stylebot.bot.core import ImagesReady, Imagine, Notification, Requester
from stylebot.config import load_settings
from stylebot.engine.models import write_tiny_model
from stylebot.engine.runtime import StyleEngine
from stylebot.queue.payloads import GenerateJob
from stylebot.queue.worker import build_worker

ME = Requester("bench", "u1", "Bench", chat_id="c1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = write_tiny_model(Path(tmp) / "tiny")
        settings = load_settings(
            environ={}, data_dir=Path(tmp) / "data", base_model=str(model), default_size=256
        )
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
            worker = build_worker(
                settings, frontend.redis_url, handle_signals=False, ctx={"engine": engine}
            )
            task = asyncio.create_task(worker.async_run())
            direct: list[float] = []
            through_queue: list[float] = []
            try:
                # Alternate the two so that whatever else the machine does
                # slows both alike; the first round only warms up.
                for i in range(runs + 1):
                    started = time.perf_counter()
                    engine.generate(job)
                    direct_s = time.perf_counter() - started

                    started = time.perf_counter()
                    await frontend.bot.handle(Imagine(ME, "a lighthouse", seed=1, steps=4))
                    await done.get()
                    queued_s = time.perf_counter() - started
                    if i:
                        direct.append(direct_s)
                        through_queue.append(queued_s)
            finally:
                # The last "finished" event comes before arq has recorded the
                # job: let it, so that closing does not cancel it half-way.
                await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await worker.close()

    overhead = [q - d for q, d in zip(through_queue, direct, strict=True)]
    ms = 1000
    print(f"runs: {runs}, tiny model, 256x256, 4 steps, CPU")
    print(f"direct engine call   median {statistics.median(direct) * ms:7.1f} ms")
    print(f"through bot + queue  median {statistics.median(through_queue) * ms:7.1f} ms")
    print(
        f"added by the queue   median {statistics.median(overhead) * ms:7.1f} ms, "
        f"p95 {percentile(overhead, 0.95) * ms:7.1f} ms (target: 20 ms, 50 ms)"
    )
    ratio = statistics.median(through_queue) / statistics.median(direct)
    print(f"ratio queue/direct (median): {ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
