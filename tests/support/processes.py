"""`stylebot` commands as real child processes, for tests that need separate processes.

Each process gets a clean environment (no STYLEBOT_* or tokens leaking in from the
shell that runs the tests) plus the settings a test gives it, and writes its output
to a log file that the test reads: with `STYLEBOT_LOG_FORMAT=json` that log is one
JSON object per line, carrying the job id of every line about a job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylebot.config import ENV_PREFIX

__all__ = ["StylebotProcess", "child_env"]

# Variables read without the prefix too (see stylebot.config.UNPREFIXED_ENV).
_UNPREFIXED = ("REDIS_URL", "DISCORD_TOKEN", "DISCORD_GUILD_ID", "TELEGRAM_TOKEN")


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

    @classmethod
    def start(
        cls,
        name: str,
        arguments: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        open_stdin: bool = False,
    ) -> StylebotProcess:
        """`open_stdin`: a pipe left open (the console then waits for input), not EOF."""
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "stylebot", *arguments],
                env=env,
                stdin=subprocess.PIPE if open_stdin else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return cls(name, process, log_path)

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
