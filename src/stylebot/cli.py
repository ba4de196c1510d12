"""The `stylebot` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from stylebot.config import Settings, SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stylebot", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (else STYLEBOT_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("demo", help="upload, consent, train and generate on the tiny model")
    console = commands.add_parser("console", help="the bot in this terminal (reads stdin)")
    console.add_argument(
        "--no-worker", action="store_true", help="do not start a worker (one runs elsewhere)"
    )
    commands.add_parser(
        "run", help="run the configured chat front ends (DISCORD_TOKEN, TELEGRAM_TOKEN)"
    )
    worker = commands.add_parser("worker", help="run a GPU worker")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    verify = commands.add_parser(
        "verify",
        help="trace an image back through its watermark",
        description="Exit status: 0 traced to a record, 1 no stylebot watermark, "
        "3 a stylebot watermark with no record in this data directory.",
    )
    verify.add_argument("image", type=Path)
    model = commands.add_parser("model", help="model tools")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = model_commands.add_parser("tiny", help="write a tiny random SD 1.5-architecture model")
    tiny.add_argument("path", type=Path)
    tiny.add_argument("--seed", type=int, default=0)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO
        if args.verbose or args.command in ("worker", "run")
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"stylebot: {exc}", file=sys.stderr)
        return 2

    try:
        match args.command:
            case "demo":
                return _demo(settings)
            case "console":
                from stylebot.bot.console import run_console

                return asyncio.run(
                    run_console(settings, sys.stdin, sys.stdout, with_worker=not args.no_worker)
                )
            case "run":
                from stylebot.bootstrap import (
                    FrontEndStartError,
                    NoFrontEndConfigured,
                    run_frontends,
                )

                try:
                    asyncio.run(run_frontends(settings))
                except NoFrontEndConfigured as exc:
                    print(f"stylebot: {exc}", file=sys.stderr)
                    return 2
                except FrontEndStartError as exc:
                    print(f"stylebot: {exc}", file=sys.stderr)
                    return 1
                return 0
            case "worker":
                from stylebot.bootstrap import run_worker

                run_worker(settings, burst=args.burst)
                return 0
            case "verify":
                if not args.image.is_file():
                    print(f"stylebot: {args.image} is not a file", file=sys.stderr)
                    return 2
                return asyncio.run(_verify(settings, args.image.name, args.image.read_bytes()))
            case "model":
                from stylebot.engine.models import write_tiny_model

                path = write_tiny_model(args.path, seed=args.seed)
                print(f"wrote a tiny model to {path}")
                return 0
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _demo(settings: Settings) -> int:
    from stylebot.bot.console import run_demo

    if not settings.base_model and not (settings.tiny_model_dir / "model_index.json").exists():
        from stylebot.engine.models import write_tiny_model

        print(f"Building the tiny demo model in {settings.tiny_model_dir} ...", flush=True)
        write_tiny_model(settings.tiny_model_dir)
    return asyncio.run(run_demo(settings))


async def _verify(settings: Settings, filename: str, data: bytes) -> int:
    """Print the record an image's watermark points to; exit 1 if it carries none of ours."""
    from stylebot.bootstrap import PngWatermarkReader, policy_from
    from stylebot.bot.core.replies import VerifyReport
    from stylebot.bot.core.verification import verify_image
    from stylebot.storage import SqliteRepository, open_database

    repo = SqliteRepository(await open_database(settings.database_path))
    try:
        report = await verify_image(
            repo, PngWatermarkReader(), filename, data, policy_from(settings).images
        )
    finally:
        await repo.close()
    print(report.text)
    if not isinstance(report, VerifyReport) or report.output_id is None:
        return 1  # no watermark of ours
    return 0 if report.output is not None else 3  # ours, but no record here


if __name__ == "__main__":
    sys.exit(main())
