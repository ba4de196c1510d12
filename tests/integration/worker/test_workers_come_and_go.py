"""Workers that come and go: announced on start, forgotten after SIGKILL, draining on SIGTERM.

Two `stylebot worker` processes join the front end's Redis, each with a data
directory of its own. Both announce themselves (device, model family, base model,
version), and `stylebot status`, the metrics and `/admin queue` list them. One is
SIGKILLed: it is gone from all three once its heartbeat's TTL has run out, the other
stays. The other is SIGTERMed while it trains: Redis's MONITOR shows it announcing
itself as draining, with the job, before the job's checkpoint is saved and before
its presence key is removed as it exits.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.support.processes import StylebotProcess, child_env, wait_until, worker_host
from tests.support.stack import Inbox

from stylebot.bootstrap import FrontEnd
from stylebot.bot.console.session import make_sample_images
from stylebot.bot.core.admin_commands import ShowQueue
from stylebot.bot.core.commands import ConfirmConsent, IncomingFile, TrainStyle, UploadImages
from stylebot.bot.core.model import Requester
from stylebot.bot.core.replies import ConsentRequest, JobProgress, JobQueued, TextReply
from stylebot.config import Settings
from stylebot.metrics import build_registry
from stylebot.queue.keys import checkpoint_key, presence_key
from stylebot.queue.worker_presence import PRESENCE_TTL_S
from stylebot.terminal_status import read_snapshot, run_status

pytestmark = pytest.mark.slow

OPERATOR = Requester("test", "op", "Olga", chat_id="c0", server_id="s1")
ME = Requester("test", "u1", "Ada", chat_id="c1", server_id="s1")
STARTUP_S = 180


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A training long enough to be stopped half-way, saving a checkpoint often.
    return settings.replace(operators="test:op", train_steps=400, checkpoint_every_steps=5)


@pytest.fixture
def workers(
    frontend: FrontEnd, settings: Settings, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[list[StylebotProcess]]:
    started = [
        StylebotProcess.start(
            name,
            ["worker"],
            child_env(
                REDIS_URL=frontend.redis_url,
                STYLEBOT_DATA_DIR=str(worker_host(tmp_path, name, settings.data_dir)),
                STYLEBOT_BASE_MODEL=str(tiny_model_dir),
                STYLEBOT_DEVICE="cpu",
            ),
            tmp_path / f"{name}.log",
        )
        for name in ("rented-a", "rented-b")
    ]
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _ids(client: redis.Redis) -> set[str]:
    return {worker.worker_id for worker in read_snapshot(client).live}


async def _admin_queue(frontend: FrontEnd) -> str:
    reply = await frontend.bot.handle(ShowQueue(OPERATOR))
    assert isinstance(reply, TextReply), reply
    return reply.text


def _metric_workers(frontend: FrontEnd) -> set[str]:
    registry, queue = build_registry(frontend.redis_url, "frontend")
    try:
        return {
            sample.labels["worker"]
            for metric in registry.collect()
            if metric.name == "stylebot_worker_info"
            for sample in metric.samples
            if sample.value == 1
        }
    finally:
        queue.close()


class MonitorLog:
    """Every command Redis runs, as MONITOR shows it, until `stop_after` is seen."""

    def __init__(self, url: str, stop_after: str) -> None:
        self.lines: list[str] = []
        self._client = redis.Redis.from_url(url, socket_timeout=120)
        self._stop_after = stop_after
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                command = str(self._monitor.next_command()["command"])
            except (redis.RedisError, OSError):
                return
            self.lines.append(command)
            if command.startswith(self._stop_after):
                return

    def close(self) -> None:
        self._thread.join(timeout=30)
        self._client.close()


async def test_workers_are_announced_forgotten_when_killed_and_drain_on_sigterm(
    frontend: FrontEnd,
    inbox: Inbox,
    workers: list[StylebotProcess],
    tmp_path: Path,
) -> None:
    killed, drained = workers
    ids = {f"{process.name}": f"{_host()}-{process.pid}" for process in workers}
    client = redis.Redis.from_url(frontend.redis_url)
    try:
        await wait_until(
            "both workers to announce themselves",
            lambda: _ids(client) == set(ids.values()),
            STARTUP_S,
            *workers,
        )
        for worker in read_snapshot(client).live:
            assert (worker.device, worker.family, worker.base_model) == ("cpu", "sd15", "tiny-sd")
            assert worker.version
            assert worker.host == _host()
            assert not worker.draining
        screen = io.StringIO()
        assert run_status(frontend.settings, screen) == 0
        for worker_id in ids.values():
            assert f"{worker_id} ({_host()}): cpu, sd15, tiny-sd" in screen.getvalue()
        assert _metric_workers(frontend) == set(ids.values())
        listed = await _admin_queue(frontend)
        assert "2 worker(s) online:" in listed
        assert all(worker_id in listed for worker_id in ids.values())

        killed.kill()
        await wait_until(
            "the killed worker to be forgotten",
            lambda: _ids(client) == {ids["rented-b"]},
            PRESENCE_TTL_S + 5,
            drained,
        )
        assert _metric_workers(frontend) == {ids["rented-b"]}
        listed = await _admin_queue(frontend)
        assert "1 worker(s) online:" in listed
        assert ids["rented-a"] not in listed

        bot = frontend.bot
        images = make_sample_images(tmp_path / "refs", 3)
        upload = tuple(IncomingFile(p.name, p.read_bytes()) for p in images)
        assert isinstance(await bot.handle(UploadImages(ME, upload)), ConsentRequest)
        await bot.handle(ConfirmConsent(ME, "own-work", rights_confirmed=True))
        queued = await bot.handle(TrainStyle(ME, "warm"))
        assert isinstance(queued, JobQueued), queued
        await inbox.next((JobProgress,), within=STARTUP_S)
        # Announced at its next heartbeat (every 2.5 s).
        await wait_until(
            "the worker to announce its job",
            lambda: any(worker.jobs for worker in read_snapshot(client).live),
            PRESENCE_TTL_S,
            drained,
        )
        job_id = read_snapshot(client).live[0].jobs[0]
        assert job_id.startswith("train")

        presence = presence_key(ids["rented-b"])
        monitor = MonitorLog(frontend.redis_url, stop_after=f"DEL {presence}")
        try:
            assert drained.stop() == 0, drained.describe()
        finally:
            monitor.close()
        commands = monitor.lines
        announced = [
            i
            for i, line in enumerate(commands)
            if line.startswith(f"SET {presence} ") and '"state":"draining"' in line
        ]
        assert announced, "\n".join(commands[-40:])
        assert job_id in commands[announced[0]]
        saved = [i for i, line in enumerate(commands) if checkpoint_key(job_id) in line]
        assert saved, "no checkpoint saved after SIGTERM"
        assert announced[0] < saved[-1] < commands.index(f"DEL {presence}")
        assert _ids(client) == set()
    finally:
        client.close()


def _host() -> str:
    import socket

    return socket.gethostname()
