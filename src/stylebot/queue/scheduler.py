"""The one thread that uses the device, and which work goes first on it.

Everything that touches the pipeline runs on this thread, so no two jobs use
it at once. Ordinary work (start-up, a training run) runs in arrival order.
Generation is "first" work: it runs as soon as the thread is free, and a
training run hands the thread over between two steps when first work waits
(`has_waiting` / `run_waiting` are the trainer's `DeviceSharing` hooks), so a
generation waits for one training step, never for a whole run. First work
may be batched: compatible generation requests that wait together share one
pipeline call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
ItemT = TypeVar("ItemT")


@dataclass
class _Waiting:
    """Work for the device thread that runs before training's next step."""

    run: Callable[[list[Any]], list[Any]]
    item: Any
    future: Future[Any]
    batch_key: Hashable | None
    max_batch: int


class _DeviceWait(asyncio.Future[T]):
    """Awaits a device thread's Future; cancelling it cancels that Future at once.

    `asyncio.wrap_future` passes a cancel on to the thread's Future only from
    a callback on the next turn of the loop: by then the device thread may
    have started the work that was meant to be dropped.
    """

    def __init__(self, source: Future[T], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._source = source

    def cancel(self, msg: Any | None = None) -> bool:
        self._source.cancel()  # no-op once the work runs: then it runs to its end
        return super().cancel(msg=msg)


def _cancelled_at_once(source: Future[T]) -> asyncio.Future[T]:
    loop = asyncio.get_running_loop()
    waiter: _DeviceWait[T] = _DeviceWait(source, loop)

    def copy_outcome(done: Future[T]) -> None:
        if waiter.done():
            return
        if done.cancelled():
            waiter.cancel()
        elif (error := done.exception()) is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    def on_done(done: Future[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(copy_outcome, done)

    source.add_done_callback(on_done)
    return waiter


class DeviceScheduler:
    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device")
        self._lock = threading.Lock()
        self._waiting: deque[_Waiting] = deque()

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` on the device thread after what is already there."""
        # In this task's context: log lines from the device thread keep the job id.
        in_context = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(self._thread, in_context, work)

    async def run_first(self, work: Callable[[], T]) -> T:
        """Run `work` on the device thread before any further training step.

        Cancelling the await before the work starts drops it.
        """
        result: T = await self.run_batched(lambda _items: [work()], None, batch_key=None)
        return result

    async def run_batched(
        self,
        run: Callable[[list[ItemT]], list[T]],
        item: ItemT,
        *,
        batch_key: Hashable | None,
        max_batch: int = 1,
    ) -> T:
        """Like `run_first`, for one `item` of work that may share a call with others.

        When the device thread gets to it, it takes every waiting item with
        the same `batch_key` (up to `max_batch`, oldest first) and calls `run`
        once with all of them; `run` returns one result per item, in order.
        """
        future: Future[T] = Future()
        waiting = _Waiting(run, item, future, batch_key, max(1, max_batch))
        with self._lock:
            self._waiting.append(waiting)
        # An idle thread runs it straight away; a busy one runs it when the
        # training run yields (and this call then finds nothing left to do).
        self._thread.submit(self.run_waiting)
        return await _cancelled_at_once(future)

    @property
    def waiting(self) -> int:
        """How many items of first work wait for the thread."""
        return len(self._waiting)

    def has_waiting(self) -> bool:
        return bool(self._waiting)

    def run_waiting(self) -> None:
        """Run all waiting first work, oldest first. Only on the device thread."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            # Items whose job was cancelled while they waited are dropped.
            live = [w for w in batch if w.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = live[0].run([w.item for w in live])
            except BaseException as exc:  # handed to the awaiting jobs, which report it
                for waiting in live:
                    waiting.future.set_exception(exc)
            else:
                for waiting, result in zip(live, results, strict=True):
                    waiting.future.set_result(result)

    def _next_batch(self) -> list[_Waiting] | None:
        with self._lock:
            if not self._waiting:
                return None
            head = self._waiting.popleft()
            batch = [head]
            if head.batch_key is not None:
                for other in list(self._waiting):
                    if len(batch) >= head.max_batch:
                        break
                    if other.batch_key == head.batch_key:
                        batch.append(other)
                        self._waiting.remove(other)
            return batch

    def shutdown(self) -> None:
        """Finish what is running (a training run stops at its next step) and end the thread."""
        self._thread.shutdown(wait=True)
