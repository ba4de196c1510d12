"""What the bot's own child processes (the local worker, the embedded Redis) share:
`with` starts one and stops it, and a child that will not exit in time is killed."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class StartedInWith(ABC):
    """`with thing:` starts it (`start` returns it) and stops it on the way out."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to `timeout` seconds for `process` to exit, then kill it."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
