"""The device thread's hand-off to the event loop gives up when the loop is gone.

The worker's training thread saved each checkpoint through the loop and waited up
to 300 s for it; once the loop had stopped (the worker's poll loop died) that wait
never ended in time, at every checkpoint, and the process hung at exit (issue 20).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from stylebot.queue.loop_handoff import LoopGone, loop_stopped, run_on_loop


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on a thread of its own, as the worker's is to the device thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    while not loop.is_running():
        time.sleep(0.01)
    yield loop
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(cancel_what_is_left())
    loop.close()


async def cancel_what_is_left() -> None:
    """Work left on a stopped loop is cancelled, as asyncio.run does at its end."""
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


async def double(value: int) -> int:
    await asyncio.sleep(0.01)
    return value * 2


async def forever() -> None:
    await asyncio.Event().wait()


def test_work_runs_on_the_loop_and_its_result_comes_back(
    running_loop: asyncio.AbstractEventLoop,
) -> None:
    assert run_on_loop(double(21), running_loop, timeout_s=5) == 42


def test_waiting_ends_as_soon_as_the_loop_stops(running_loop: asyncio.AbstractEventLoop) -> None:
    threading.Timer(0.3, lambda: running_loop.call_soon_threadsafe(running_loop.stop)).start()
    started = time.monotonic()
    with pytest.raises(LoopGone):
        run_on_loop(forever(), running_loop, timeout_s=300)
    assert time.monotonic() - started < 2
    assert loop_stopped(running_loop)


def test_work_handed_to_a_stopped_loop_is_refused_at_once() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    work = double(1)
    with pytest.raises(LoopGone):
        run_on_loop(work, loop, timeout_s=300)
    assert work.cr_frame is None  # closed, not left to warn "never awaited"


def test_work_that_takes_too_long_times_out(running_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TimeoutError):
        run_on_loop(forever(), running_loop, timeout_s=0.3)
