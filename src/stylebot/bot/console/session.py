"""`stylebot console` and `stylebot demo`: the console adapter on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from PIL import Image, ImageDraw

from stylebot.bootstrap import open_frontend
from stylebot.bot.console.adapter import ConsoleAdapter, stdin_lines
from stylebot.bot.core.replies import VerifyReport
from stylebot.bot.core.service import StyleBot
from stylebot.config import Settings
from stylebot.queue.local_worker import LocalWorker
from stylebot.queue.running_jobs import arq_time_limit_s


async def run_console(
    settings: Settings,
    stdin: TextIO,
    out: TextIO,
    *,
    with_worker: bool = True,
    user: str = "console-user",
) -> int:
    """The console until /quit, the end of input, or SIGTERM (`docker stop`, `kill`).

    SIGTERM unwinds like /quit: the worker child is stopped and the embedded Redis
    shut down. Python's default for SIGTERM is to die on the spot, which left the
    embedded redis-server (in a session of its own) running for ever.
    """
    terminated = asyncio.Event()
    console_task = asyncio.current_task()
    assert console_task is not None
    loop = asyncio.get_running_loop()

    def on_sigterm() -> None:
        terminated.set()
        console_task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await _run_console(settings, stdin, out, with_worker=with_worker, user=user)
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        return 0
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _run_console(
    settings: Settings, stdin: TextIO, out: TextIO, *, with_worker: bool, user: str
) -> int:
    interactive = stdin.isatty()
    async with open_frontend(settings) as frontend:
        with contextlib.ExitStack() as stack:
            worker = (
                stack.enter_context(LocalWorker(settings, frontend.redis_url))
                if with_worker
                else None
            )
            if worker is not None:
                if interactive:
                    print("Starting the worker (loading the model) ...", file=out, flush=True)
                await worker.wait_until_serving(frontend.queue.redis)
            console = _console(frontend.bot, settings, out, worker, user=user)
            frontend.add_sink("console", console.notify)
            frontend.start_delivery()
            if interactive:
                print("stylebot console. Type /help for commands, /quit to leave.", file=out)
            lines = stdin_lines(stdin, "> " if interactive else None, out)
            # A script waits for each job before its next line; a person sees
            # results arrive while they type.
            return await console.run(lines, wait_for_jobs=not interactive)


def _console(
    bot: StyleBot,
    settings: Settings,
    out: TextIO,
    worker: LocalWorker | None,
    *,
    user: str = "console-user",
) -> ConsoleAdapter:
    return ConsoleAdapter(
        bot,
        out,
        settings.outputs_dir,
        user=user,
        max_read_bytes=settings.max_upload_bytes,
        # The longest a running job may take to end, storing its result included.
        job_timeout_s=arq_time_limit_s(settings.train_timeout_s),
        is_alive=worker.problem if worker else None,
    )


def demo_settings(settings: Settings, on_tiny_model: bool) -> Settings:
    """Small, fast settings when the demo runs on a tiny model (the default, or another
    family's with --family); the operator's own base model keeps the operator's."""
    if not on_tiny_model:
        return settings
    return settings.replace(
        train_steps=60,
        train_resolution=128,
        learning_rate=1e-3,
        default_size=256,
        default_steps=12,
    )


def make_sample_images(directory: Path, count: int = 4, size: int = 256) -> list[Path]:
    """A few reference images in one recognisable look: warm stripes and circles."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    paths = []
    for index in range(count):
        image = Image.new("RGB", (size, size), (250, 230, 200))
        draw = ImageDraw.Draw(image)
        for y in range(0, size, 16):
            draw.rectangle([0, y, size, y + 7], fill=(230, 120 + rng.randrange(60), 40))
        for _ in range(5):
            x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(12, 48)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(40, 60, 140 + rng.randrange(100)))
        path = directory / f"sample-{index + 1}.png"
        image.save(path)
        paths.append(path)
    return paths


async def run_demo(settings: Settings, on_tiny_model: bool, out: TextIO = sys.stdout) -> int:
    """Upload, consent, train, imagine and verify, printing each step like a user would see."""
    settings = demo_settings(settings, on_tiny_model)
    samples = make_sample_images(settings.data_dir / "demo")
    style = f"demo-{datetime.now(UTC):%H%M%S}"
    script = [
        "/upload " + " ".join(f'"{p}"' for p in samples),
        "/consent own-work",
        f"/train {style}",
        f"/imagine a lighthouse at dawn style:{style} seed:42",
    ]
    async with open_frontend(settings) as frontend:
        with LocalWorker(settings, frontend.redis_url) as worker:
            await worker.wait_until_serving(frontend.queue.redis)
            console = _console(frontend.bot, settings, out, worker)
            frontend.add_sink("console", console.notify)
            frontend.start_delivery()
            for line in script:
                print(f"\n> {line}", file=out, flush=True)
                if await console.execute(line) != "ok" or not await console.wait_for_jobs():
                    print("\nThe demo stopped: see the message above.", file=out)
                    return 1
        image = console.saved_images[-1]
        print(f"\n> /verify {image}", file=out, flush=True)
        await console.execute(f'/verify "{image}"')
        report = console.last_reply
        if not isinstance(report, VerifyReport) or report.output is None:
            print("\nThe image's watermark did not verify.", file=out)
            return 1
    print(
        f"\nDone. The watermarked image is at:\n  {image.resolve()}\n"
        f"Check it any time with: stylebot verify {image}",
        file=out,
    )
    return 0
