"""Handing work from the device thread to the worker's event loop, safely.

The training thread saves checkpoints and sends events through coroutines on
the event loop. If that loop has stopped (the worker's poll loop crashed, or it
is exiting), a coroutine handed to it never runs: waiting for it blocked the
training thread for the full timeout at every checkpoint, and the interpreter
waits for that thread at exit, so the process hung for ever and ignored SIGTERM.
Here the thread waits in short slices and gives up as soon as the loop is gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# How often a waiting thread looks whether the loop is still there.
_CHECK_EVERY_S = 0.2


class LoopGone(RuntimeError):
    """The event loop stopped: the work handed to it will never run."""


def loop_stopped(loop: asyncio.AbstractEventLoop) -> bool:
    return loop.is_closed() or not loop.is_running()


def run_on_loop(
    work: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop, timeout_s: float
) -> T:
    """Run `work` on `loop` from another thread and return its result.

    Raises LoopGone when the loop stops first, TimeoutError after `timeout_s`,
    else what `work` raised.
    """
    if loop_stopped(loop):
        work.close()
        raise LoopGone("the event loop has stopped")
    try:
        future = asyncio.run_coroutine_threadsafe(work, loop)
    except RuntimeError as exc:  # closed between the check and the hand-off
        work.close()
        raise LoopGone(str(exc)) from exc
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            return future.result(timeout=max(0.0, min(_CHECK_EVERY_S, left)))
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # `work` itself raised TimeoutError
            if loop_stopped(loop):
                future.cancel()
                raise LoopGone("the event loop stopped while the work waited") from None
            if time.monotonic() >= deadline:
                future.cancel()
                raise TimeoutError(f"not done within {timeout_s:g} s") from None
