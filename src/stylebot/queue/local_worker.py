"""A `stylebot worker` child process, for the console and the demo on one machine."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Self

from redis.asyncio import Redis

from stylebot.child_environment import FRONT_END_SECRETS, inherited_environment
from stylebot.config import ENV_PREFIX, Settings
from stylebot.queue.child_process import StartedInWith, wait_or_kill
from stylebot.queue.keys import worker_health_key
from stylebot.startup_checks import StartupError


def settings_env(settings: Settings, redis_url: str) -> dict[str, str]:
    """The environment that gives a child worker process these exact settings, less the
    front ends' secrets (`FRONT_END_SECRETS`), however they were given."""
    env = inherited_environment()
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "extra" or f.name in FRONT_END_SECRETS or value is None:
            continue
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        env[ENV_PREFIX + f.name.upper()] = text
    env[ENV_PREFIX + "DATA_DIR"] = str(settings.data_dir.resolve())
    env["REDIS_URL"] = redis_url
    return env


class LocalWorker(StartedInWith):
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.log_path: Path = settings.data_dir / "logs" / "worker.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Its stdin is a pipe this process holds and never writes: when this process
            # ends, however it ends (SIGKILL, the OOM killer), the worker reads EOF and
            # stops (stop_when_stdin_closes) instead of holding the model, and the GPU,
            # for ever beside the next start's worker.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "stylebot", "worker", "--stop-with-parent"],
                env=settings_env(self.settings, self.redis_url),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    async def wait_until_serving(self, redis: Redis, *, poll_s: float = 0.2) -> None:
        """Return once the worker serves the queue (its model loaded); StartupError with
        its last log line if it exits first, so that the console takes no command that
        nobody would ever carry out."""
        assert self._process is not None, "start() first"
        health_key = worker_health_key(f"{socket.gethostname()}-{self._process.pid}")
        while not await redis.exists(health_key):
            if self._process.poll() is not None:
                lines = self.log_path.read_text(errors="replace").strip().splitlines()
                last = lines[-1].removeprefix("stylebot: ") if lines else "no output"
                raise StartupError(
                    f"the worker could not start (exit {self._process.returncode}): {last} "
                    f"(its log: {self.log_path})"
                )
            await asyncio.sleep(poll_s)

    def problem(self) -> str | None:
        """Why the worker cannot finish jobs (it exited), or None while it runs."""
        if self._process is None or self._process.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-8:]
        return (
            f"The worker exited (status {self._process.returncode}). "
            f"Last lines of {self.log_path}:\n    " + "\n    ".join(tail)
        )

    def stop(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()  # arq finishes or abandons the job and exits
                wait_or_kill(process, timeout)
        finally:
            if process.stdin is not None:
                process.stdin.close()  # after it exited: its end is its cue to stop


def stop_when_stdin_closes() -> None:
    """`stylebot worker --stop-with-parent`: SIGTERM to this process once standard input
    reaches its end, that is once the process holding the pipe's other end is gone. The
    worker then stops as on any SIGTERM (its job finished or given back); before arq
    handles signals (the model still loading), Python's default ends it at once."""

    # The descriptor, not sys.stdin: a daemon thread blocked in the buffered reader holds
    # its lock, and the interpreter aborts at exit when it cannot take it (SIGABRT).
    stdin = sys.stdin.fileno()

    def watch() -> None:
        while os.read(stdin, 65536):
            pass  # nothing is ever written: a read returns only at the end
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
