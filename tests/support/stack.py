"""The real stack as fixtures: embedded Redis, SQLite files, the tiny model, a worker.

Integration and e2e conftests import these fixtures by name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from stylebot.bootstrap import FrontEnd, open_frontend
from stylebot.bot.core.replies import Notification
from stylebot.bot.core.training_report import is_training_report
from stylebot.config import Settings, load_settings


@pytest.fixture(scope="session")
def tiny_engine(
    tiny_model_dir: Path, tiny_controlnet_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One loaded engine for the session: loading the pipeline is the slow part. /sketch's
    tiny ControlNet loads only when a test sketches (tests/e2e/*/test_*_sketch.py)."""
    from stylebot.engine.runtime import StyleEngine

    return StyleEngine(
        str(tiny_model_dir),
        tmp_path_factory.mktemp("engine-cache"),
        controlnets={"edges": str(tiny_controlnet_dir)},
    )


@pytest.fixture
def settings(tmp_path: Path, tiny_model_dir: Path) -> Settings:
    return load_settings(
        environ={},
        data_dir=tmp_path / "data",
        base_model=str(tiny_model_dir),
        train_steps=8,
        train_resolution=64,
        learning_rate=1e-3,
        default_size=256,
        default_steps=4,
    )


class Inbox:
    """Collects what the front end delivers to the 'test' platform."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[Notification] = asyncio.Queue()

    async def __call__(self, notification: Notification) -> None:
        await self.received.put(notification)

    async def next(
        self, kinds: tuple[type, ...], within: float = 120, *, reports: bool = False
    ) -> Notification:
        """The next notification whose reply is one of `kinds`, skipping progress and
        (unless `reports`) the picture of how a training went."""
        async with asyncio.timeout(within):
            while True:
                notification = await self.received.get()
                if is_training_report(notification.reply) and not reports:
                    continue
                if isinstance(notification.reply, kinds):
                    return notification


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[ArqRedis]:
    """A client of an embedded Redis of the test's own (no front end around it)."""
    from stylebot.queue.connection import connect
    from stylebot.queue.redis_server import EmbeddedRedis

    with EmbeddedRedis(tmp_path / "redis-home") as server:
        client = await connect(server.url)
        try:
            yield client
        finally:
            await client.aclose()


@pytest.fixture
async def frontend(settings: Settings) -> AsyncIterator[FrontEnd]:
    async with open_frontend(settings) as running:
        yield running


@pytest.fixture
async def inbox(frontend: FrontEnd) -> Inbox:
    box = Inbox()
    frontend.add_sink("test", box)
    frontend.start_delivery()
    return box


@pytest.fixture
async def worker(settings: Settings, frontend: FrontEnd, tiny_engine: Any) -> AsyncIterator[None]:
    """An arq worker in this process, on the real Redis, with the session's engine."""
    from stylebot.queue.worker import build_worker

    arq_worker = build_worker(
        settings, frontend.redis_url, handle_signals=False, engine=tiny_engine
    )
    task = asyncio.create_task(arq_worker.async_run())
    yield
    # Stopping lets a job that records its result finish, and arq record it
    # (`stylebot.queue.running_jobs`); the others stop at their next step.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await arq_worker.close()
