"""The device thread's order: first work between training steps, batches by key."""

from __future__ import annotations

import asyncio
import threading
import time

from stylebot.queue.scheduler import DeviceScheduler


async def test_first_work_runs_between_the_steps_of_a_running_job() -> None:
    device = DeviceScheduler()
    log: list[str] = []
    started = threading.Event()
    generation_done = threading.Event()

    def training() -> None:
        started.set()
        for step in range(1, 200):
            log.append(f"step{step}")
            if device.has_waiting():
                device.run_waiting()
            if generation_done.is_set() and step >= 5:
                return
            time.sleep(0.005)

    running = asyncio.ensure_future(device.run(training))
    await asyncio.to_thread(started.wait)

    def generation() -> str:
        log.append("generation")
        generation_done.set()
        return "image"

    assert await device.run_first(generation) == "image"
    await running
    device.shutdown()
    # It ran on the device thread inside the training job, between two steps.
    at = log.index("generation")
    assert 0 < at < len(log) - 1
    assert log[at - 1].startswith("step")
    assert log[at + 1].startswith("step")


async def test_waiting_items_with_one_key_share_a_call_up_to_the_batch_size() -> None:
    device = DeviceScheduler()
    release = threading.Event()
    calls: list[list[str]] = []

    def run(items: list[str]) -> list[str]:
        calls.append(items)
        return [item.upper() for item in items]

    blocker = asyncio.ensure_future(device.run(release.wait))  # the thread is busy meanwhile
    await asyncio.sleep(0.05)
    keyed = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("a3", "a"), ("none", None)]
    results = [
        asyncio.ensure_future(device.run_batched(run, item, batch_key=key, max_batch=2))
        for item, key in keyed
    ]
    await asyncio.sleep(0.05)
    release.set()
    await blocker
    assert await asyncio.gather(*results) == ["A1", "B1", "A2", "A3", "NONE"]
    device.shutdown()
    # Oldest first; a batch takes later items of its key, at most two here.
    assert calls == [["a1", "a2"], ["b1"], ["a3"], ["none"]]


async def test_work_cancelled_while_it_waits_never_runs() -> None:
    device = DeviceScheduler()
    holding, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold_the_device() -> None:
        holding.set()
        release.wait()

    blocker = asyncio.ensure_future(device.run(hold_the_device))
    # Wait until the blocker really holds the device, however loaded the machine.
    assert await asyncio.to_thread(holding.wait, 10)
    dropped = asyncio.ensure_future(device.run_first(lambda: ran.append("dropped")))
    kept = asyncio.ensure_future(device.run_first(lambda: ran.append("kept")))
    await asyncio.sleep(0.05)
    dropped.cancel()
    release.set()
    await blocker
    await kept
    device.shutdown()
    assert ran == ["kept"]
