"""`stylebot` commands as real child processes, for tests that need separate processes.

Each process gets a clean environment (no STYLEBOT_* or tokens leaking in from the
shell that runs the tests) plus the settings a test gives it, and writes its output
to a log file that the test reads: with `STYLEBOT_LOG_FORMAT=json` that log is one
JSON object per line, carrying the job id of every line about a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stylebot.config import ENV_PREFIX

__all__ = [
    "StylebotProcess",
    "child_env",
    "free_port",
    "free_ports",
    "wait_until",
    "worker_host",
]

# Variables read without the prefix too (see stylebot.config.UNPREFIXED_ENV).
_UNPREFIXED = ("REDIS_URL", "DISCORD_TOKEN", "DISCORD_GUILD_ID", "TELEGRAM_TOKEN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on (right now).
    Each probe is held until all are chosen: a port whose probe was closed can be handed
    out again at once (two calls of :func:`free_port` gave a SeaweedFS server one port for
    its master and its master's gRPC, and it failed to start)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def child_env(**settings: str) -> dict[str, str]:
    """This process's environment minus stylebot settings, plus `settings`.

    Fake platform servers listen on 127.0.0.1, which proxy variables must not
    catch; torch gets one thread, since several processes share a few cores.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIX) and name not in _UNPREFIXED
    }
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "OMP_NUM_THREADS": "1",
        }
    )
    return {**env, **settings}


@dataclass
class StylebotProcess:
    """One `python -m stylebot ...` child, its output in `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    # Where stdout goes when it is not the log (a console's screen), see `start`.
    screen_path: Path | None = None

    @classmethod
    def start(
        cls,
        name: str,
        arguments: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        screen_path: Path | None = None,
        open_stdin: bool = False,
    ) -> StylebotProcess:
        """With `screen_path`: stdout goes there, the log (stderr) to `log_path`, and
        stdin is a pipe that `type_line` writes to, as a person at a console.
        `open_stdin`: a pipe left open (the console then waits for input), not EOF."""
        with contextlib.ExitStack() as files:
            log = files.enter_context(log_path.open("ab"))
            screen = files.enter_context(screen_path.open("ab")) if screen_path else None
            process = subprocess.Popen(
                [sys.executable, "-m", "stylebot", *arguments],
                env=env,
                stdin=subprocess.PIPE if screen or open_stdin else subprocess.DEVNULL,
                stdout=screen or log,
                stderr=log if screen else subprocess.STDOUT,
            )
        return cls(name, process, log_path, screen_path)

    def type_line(self, line: str) -> None:
        assert self.process.stdin is not None, "started without a screen_path"
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def end_input(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()

    def screen_text(self) -> str:
        path = self.screen_path
        return path.read_text(errors="replace") if path and path.exists() else ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_log(self) -> list[dict[str, Any]]:
        """The JSON log records so far; other lines (library warnings) are skipped."""
        records = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line being written right now
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def job_log(self, job_id: str) -> list[str]:
        """The messages this process logged about one job."""
        return [str(r.get("message", "")) for r in self.json_log() if r.get("job_id") == job_id]

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a host or a process dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; killed if it does not exit in time. The exit status."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def describe(self) -> str:
        """For assertion messages: status and the end of the log."""
        tail = "\n".join(self.log_text().splitlines()[-30:])
        return f"{self.name} (pid {self.pid}, exit {self.process.poll()}):\n{tail}"


def worker_host(tmp_path: Path, name: str, frontend_data: Path) -> Path:
    """A worker's own data directory whose blobs/ is the front end's blob store."""
    data = tmp_path / name
    data.mkdir()
    (data / "blobs").symlink_to(frontend_data / "blobs", target_is_directory=True)
    return data


async def wait_until(
    what: str,
    check: Callable[[], bool],
    within: float,
    *alive: StylebotProcess,
    seen: Callable[[], str] = str,
) -> None:
    """Poll `check()` until true; fail at once, with its log, if a process exits.
    `seen()` adds what the user saw to the failure message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        for process in alive:
            assert process.running(), f"while waiting for {what}: {process.describe()}"
        if loop.time() > deadline:
            logs = "\n\n".join(process.describe() for process in alive)
            pytest.fail(f"no {what} within {within} s\n{seen()}\n{logs}")
        await asyncio.sleep(0.05)
