"""The `stylebot` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from stylebot.config import TINY_FAMILIES, Settings, load_settings
from stylebot.logs import configure_logging, log_format_of
from stylebot.private_files import ensure_private_directory, use_private_umask
from stylebot.redaction import RedactingStream, redact, secrets_of
from stylebot.setting_rules import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stylebot", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (else STYLEBOT_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="upload, consent, train and generate on the tiny model")
    demo.add_argument(
        "--family",
        choices=TINY_FAMILIES,
        default="sd15",
        help="the tiny model's family when no base model is set (default sd15)",
    )
    console = commands.add_parser("console", help="the bot in this terminal (reads stdin)")
    console.add_argument(
        "--no-worker", action="store_true", help="do not start a worker (one runs elsewhere)"
    )
    console.add_argument(
        "--user",
        type=_console_user_name,
        default="console-user",
        help="the user the console acts as (a script can switch with /as NAME)",
    )
    commands.add_parser(
        "run", help="run the configured chat front ends (DISCORD_TOKEN, TELEGRAM_TOKEN)"
    )
    worker = commands.add_parser("worker", help="run a GPU worker")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument(
        "--stop-with-parent",
        action="store_true",
        help="stop as on SIGTERM when standard input closes (the console's own worker: "
        "it must not outlive a console that was killed)",
    )
    verify = commands.add_parser(
        "verify",
        help="trace an image back through its watermark",
        description="Exit status: 0 an output as it was made, 1 no stylebot watermark and "
        "like none of the outputs, 3 anything else (altered, a copied mark, no record, "
        "or only a likeness).",
    )
    verify.add_argument("image", type=Path)
    consent = commands.add_parser("consent", help="the consent ledger")
    consent_commands = consent.add_subparsers(
        dest="consent_command", required=True, metavar="ACTION"
    )
    consent_verify = consent_commands.add_parser(
        "verify",
        help="check the consent ledger's hash chain",
        description="Exit status: 0 the chain holds, 1 it is broken (each break is listed).",
    )
    consent_verify.add_argument(
        "--expect-head", metavar="HASH", help="also require this head hash (recorded earlier)"
    )
    model = commands.add_parser("model", help="model tools")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = model_commands.add_parser(
        "tiny", help="write a tiny random SD 1.5, SD 2.x, SDXL, FLUX.1 or SD 3.5-architecture model"
    )
    tiny.add_argument("path", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument(
        "--family",
        choices=TINY_FAMILIES,
        default="sd15",
        help="the architecture: SD 1.5 (epsilon), SD 2.x (v-prediction), SDXL, FLUX.1-dev, "
        "FLUX.1-schnell or SD 3.5 (default sd15)",
    )
    doctor = commands.add_parser(
        "doctor",
        help="check settings, tokens, Redis, the model, GPU, disk, metrics port and signing; "
        "say how to fix each",
        description="Exit status: 0 when no check failed (warnings allowed), 1 otherwise.",
    )
    doctor.add_argument(
        "--no-model",
        action="store_true",
        help="skip loading the base model and the captioner (slow for big ones)",
    )
    doctor.add_argument(
        "--check-blobs",
        action="store_true",
        help="also hash every stored file against its name and list the damaged ones",
    )
    status = commands.add_parser(
        "status", help="workers, the queue and running jobs, from Redis (no database needed)"
    )
    status.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C"
    )

    args = parser.parse_args(argv)
    use_private_umask()  # every file this process and its children make is 0600
    level = logging.INFO if args.verbose or args.command in ("worker", "run") else logging.WARNING
    configure_logging(level)  # redacting from the first line, before settings load
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        # Job ids on every line about a job; text or JSON (STYLEBOT_LOG_FORMAT); the
        # settings' credentials never appear in any line.
        configure_logging(level, log_format_of(settings), secrets=secrets_of(settings))
    except (SettingsError, ValueError) as exc:
        print(f"stylebot: {redact(str(exc))}", file=sys.stderr)
        return 2

    from stylebot.queue.redis_socket import EmbeddedRedisError
    from stylebot.startup_checks import StartupError

    try:
        _check_before_starting(
            settings, args.command, with_worker=not getattr(args, "no_worker", False)
        )
        return _run_command(parser, args, settings)
    except (StartupError, EmbeddedRedisError) as exc:
        # One line, no traceback: what is wrong and what to do (issue 20).
        print(f"stylebot: {redact(str(exc))}", file=sys.stderr)
        return 2


def _console_user_name(value: str) -> str:
    """`--user`, checked as the argument is parsed: before anything starts."""
    from stylebot.bot.console.adapter import console_user_name

    try:
        return console_user_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_before_starting(settings: Settings, command: str, *, with_worker: bool) -> None:
    """What a command needs, checked before it starts anything (StartupError if missing)."""
    from stylebot.startup_checks import (
        check_base_model,
        check_blob_store,
        check_data_dir,
        check_redis_reachable,
        warn_if_disk_low,
    )

    if command not in ("run", "console", "worker", "demo"):
        return
    check_data_dir(settings)
    ensure_private_directory(settings.data_dir)
    if settings.redis_url:
        from stylebot.queue.redis_endpoint import RedisEndpoint

        check_redis_reachable(RedisEndpoint.from_settings(settings))
    check_blob_store(settings)
    # The demo builds the tiny model itself when no base model is set.
    if (command == "worker" or (command == "console" and with_worker)) or (
        command == "demo" and settings.base_model
    ):
        check_base_model(settings)
    warn_if_disk_low(settings)


def _run_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings
) -> int:
    try:
        match args.command:
            case "demo":
                return _demo(settings, args.family)
            case "console":
                from stylebot.bot.console.session import run_console

                return asyncio.run(
                    run_console(
                        settings,
                        sys.stdin,
                        sys.stdout,
                        with_worker=not args.no_worker,
                        user=args.user,
                    )
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
                    print(f"stylebot: {redact(str(exc))}", file=sys.stderr)
                    return 2
                except FrontEndStartError as exc:  # a rejected token is in its message
                    print(f"stylebot: {redact(str(exc))}", file=sys.stderr)
                    return 1
                return 0
            case "worker":
                from stylebot.bootstrap import run_worker

                if args.stop_with_parent:
                    from stylebot.queue.local_worker import stop_when_stdin_closes

                    stop_when_stdin_closes()
                run_worker(settings, burst=args.burst)
                return 0
            case "verify":
                if not args.image.is_file():
                    print(f"stylebot: {args.image} is not a file", file=sys.stderr)
                    return 2
                return asyncio.run(_verify(settings, args.image.name, args.image.read_bytes()))
            case "consent":
                return asyncio.run(_consent_verify(settings, args.expect_head))
            case "doctor":
                from stylebot.doctor import run_doctor

                return run_doctor(
                    settings,
                    RedactingStream(sys.stdout),
                    load_model=not args.no_model,
                    scan_blobs=args.check_blobs,
                )
            case "status":
                from stylebot.terminal_status import run_status

                return run_status(settings, RedactingStream(sys.stdout), watch_every_s=args.watch)
            case "model":
                from stylebot.engine.tiny_model import write_tiny_model

                path = write_tiny_model(args.path, seed=args.seed, family=args.family)
                print(f"wrote a tiny {args.family} model to {path}")
                return 0
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


def _demo(settings: Settings, family: str = "sd15") -> int:
    from stylebot.bot.console.session import run_demo

    on_tiny_model = not settings.base_model
    if on_tiny_model:
        model_dir = settings.tiny_model_dir
        if family != "sd15":
            # Another family's tiny model beside the default one, as the base model.
            model_dir = model_dir.with_name(f"tiny-{family}")
            settings = settings.replace(base_model=str(model_dir))
        if not (model_dir / "model_index.json").exists():
            from stylebot.engine.tiny_model import write_tiny_model

            print(f"Building the tiny {family} demo model in {model_dir} ...", flush=True)
            write_tiny_model(model_dir, family=family)
    return asyncio.run(run_demo(settings, on_tiny_model))


async def _verify(settings: Settings, filename: str, data: bytes) -> int:
    """Print what /verify knows of an image, in full: the operator sees private records
    too. Exit 0 when it is an output of ours as made, 1 when it carries no watermark and
    resembles none, 3 otherwise (altered, a copied mark, no record, or only a likeness)."""
    from stylebot.bootstrap import PngWatermarkReader, policy_from, signing_identity
    from stylebot.bot.core.attribution import OPERATOR
    from stylebot.bot.core.credentials import with_credentials
    from stylebot.bot.core.replies import VerifyReport, VerifyVerdict
    from stylebot.bot.core.verification import verify_image
    from stylebot.provenance.content_credentials import C2paCredentialsReader
    from stylebot.storage.blob_storage import open_blob_store
    from stylebot.storage.unit_of_work import SqliteUnitOfWork

    records = await SqliteUnitOfWork.open(settings.database_path)
    policy = policy_from(settings)
    try:
        # The blob store too: a mark is only attributed if the picture matches its output.
        found = await verify_image(
            records,
            PngWatermarkReader(),
            filename,
            data,
            policy.images,
            blobs=open_blob_store(settings),
            viewer=OPERATOR,
            max_side=policy.max_size,
        )
    finally:
        await records.close()
    # The same report /verify gives in chat: watermark, record, and C2PA manifest.
    credentials = C2paCredentialsReader(signing_identity(settings).chain_pem)
    report = with_credentials(found, credentials, data)
    print(report.text)
    if not isinstance(report, VerifyReport) or report.verdict is VerifyVerdict.NO_MARK:
        return 1  # no watermark of ours, and like none of our outputs
    if report.output_id is not None:
        print("(Shown in full: as the operator you see the records of private outputs too.)")
    return 0 if report.verdict is VerifyVerdict.MADE else 3


async def _consent_verify(settings: Settings, expect_head: str | None) -> int:
    """Walk the consent ledger's chain; list every break; exit 1 if there is one."""
    from stylebot.bot.core.ledger import verify_chain
    from stylebot.storage.unit_of_work import SqliteUnitOfWork

    if not settings.database_path.is_file():
        print(f"stylebot: no database at {settings.database_path}", file=sys.stderr)
        return 2
    records = await SqliteUnitOfWork.open(settings.database_path)
    try:
        report = verify_chain(await records.ledger.entries())
    finally:
        await records.close()
    for problem in report.breaks:
        print(f"entry {problem.seq}: {problem.problem}")
    head_ok = expect_head is None or expect_head == report.head_hash
    if not head_ok:
        print(f"the head is {report.head_hash}, not the expected {expect_head}")
    verdict = "intact" if report.intact and head_ok else "BROKEN"
    print(f"consent ledger: {report.entries} entries, {verdict}; head {report.head_hash}")
    return 0 if report.intact and head_ok else 1


if __name__ == "__main__":
    sys.exit(main())
