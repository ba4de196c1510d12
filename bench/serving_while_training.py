"""Serving while training: generation latency while a training run holds the
worker's device, against the latency on an idle worker.

Uses the worker's own device scheduler and engine (what `stylebot worker`
runs, without the queue around it): generation is first work, which the
training run lets through between two steps. Tiny model, CPU, generation at
256x256 with 4 steps, training at 128 px.
Target: latency while training <= idle latency + one training step.
Run: .venv/bin/python bench/serving_while_training.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _common import median_ms, one_thread, percentile, sample_images, tiny_model
from PIL import Image

from stylebot.engine.runtime import JobCancelled, StyleEngine
from stylebot.queue.payloads import GenerateJob, TrainSettings
from stylebot.queue.scheduler import DeviceScheduler

# Training runs alone for this many steps first, to time a step.
ALONE_STEPS = 10
JOB = GenerateJob("bench", "a lighthouse", "", 1, 4, 7.5, 256, 256, ("aaaaaaaaaaaa",))


async def latencies(
    device: DeviceScheduler, engine: StyleEngine, runs: int, waits: list[float] | None = None
) -> list[float]:
    """End-to-end latencies of `runs` generations; `waits` gets each one's wait for the device."""
    measured = []
    for _ in range(runs):
        started = time.perf_counter()

        def work(started: float = started) -> None:
            if waits is not None:
                waits.append(time.perf_counter() - started)
            engine.generate(JOB)

        await device.run_first(work)
        measured.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)  # requests arrive at any point of a step
    return measured


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def main(runs: int) -> None:
    one_thread()
    with tempfile.TemporaryDirectory() as tmp:
        engine = StyleEngine(str(tiny_model(Path(tmp))), Path(tmp) / "cache")
        device = DeviceScheduler()
        engine.generate(JOB)  # warm-up
        idle = await latencies(device, engine, runs)

        step_ends: list[float] = []
        stop = threading.Event()
        running = threading.Event()
        pngs = [_png(image) for image in sample_images(3)]
        settings = TrainSettings(steps=100_000, resolution=128, rank=4)

        def progress(_step: int, _total: int, _loss: float) -> None:
            step_ends.append(time.perf_counter())
            if len(step_ends) >= ALONE_STEPS:
                running.set()

        def train() -> None:
            with contextlib.suppress(JobCancelled):
                engine.train(
                    pngs,
                    "sks style",
                    settings,
                    on_progress=progress,
                    should_stop=stop.is_set,
                    device_sharing=device,
                )

        training = asyncio.ensure_future(device.run(train))
        await asyncio.to_thread(running.wait)
        waits: list[float] = []
        busy = await latencies(device, engine, runs, waits)
        stop.set()
        await training
        # Idle again: the machine's load may have changed while training ran.
        idle += await latencies(device, engine, runs)
        device.shutdown()

    # A step's own time, from the steps before any generation arrived.
    step = statistics.median(b - a for a, b in itertools.pairwise(step_ends[:ALONE_STEPS]))
    idle_ms, busy_ms = median_ms(idle), median_ms(busy)
    print(f"runs: {runs}, tiny model, generation 256x256 4 steps, training 128 px, CPU, 1 thread")
    print(f"generation on an idle worker     median {idle_ms:7.1f} ms")
    print(
        f"generation while training runs   median {busy_ms:7.1f} ms, "
        f"p95 {percentile(busy, 0.95) * 1000:7.1f} ms"
    )
    print(f"one training step                       {step * 1000:7.1f} ms")
    print(
        f"of which waiting for the device  median {median_ms(waits):7.1f} ms, "
        f"max {max(waits) * 1000:7.1f} ms (the rest is the generation itself)"
    )
    print(
        f"ratio training/idle: {busy_ms / idle_ms:.3f}; "
        f"target <= (idle + one step)/idle = {(idle_ms + step * 1000) / idle_ms:.3f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    asyncio.run(main(parser.parse_args().runs))
