"""Structured logs: every line logged while a job is handled carries its job id.

The worker (and the front end, while it handles a job's event) wraps the work in
`job_context(job_id)`; a filter on the root handlers copies the id from a
context variable onto each record, so the engine, arq and library loggers need
no change. Lines about no job carry `-`.

Two formats: `text` (one line, `job=...` after the logger name) for a terminal
or journald, and `json` (one object per line) for log collectors.

Every line, tracebacks included, goes through `stylebot.redaction.redact`, and so
do uncaught exceptions: no credential reaches a log (see that module).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TextIO

from stylebot.config import Settings
from stylebot.log_privacy import JobArgumentsFilter
from stylebot.redaction import redact, register_secrets

NO_JOB = "-"
LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job_id)s: %(message)s"

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stylebot_job_id", default=None
)


def current_job_id() -> str | None:
    """The id of the job this code runs for, or None."""
    return _job_id.get()


async def bind_job_context(ctx: dict[str, Any]) -> None:
    """An arq `on_job_start` hook: the rest of the job's task logs with its id, arq's own
    result line included. arq runs each job in a task of its own, so this ends with it."""
    job_id = ctx.get("job_id")
    if job_id:
        _job_id.set(str(job_id))


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every log record made inside (in this task, and in threads started with a copy of
    this context) carries `job_id`."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Adds `record.job_id`; a record that already has one (passed in `extra=`) keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None):
            record.job_id = _job_id.get() or NO_JOB
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, job_id (when there is one), message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id and job_id != NO_JOB:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Another formatter's whole output, message and traceback, with secrets removed."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def configure_logging(
    level: int = logging.INFO,
    log_format: LogFormat = "text",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Replace the root handlers with one that writes job-tagged, redacted lines to
    `stream`; `secrets` (see `redaction.secrets_of`) are never written anywhere."""
    register_secrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(JobIdFilter())
    # No job's arguments (prompts, style names) in any line: stylebot.log_privacy.
    handler.addFilter(JobArgumentsFilter())
    handler.setFormatter(
        RedactingFormatter(
            JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
        )
    )
    # Warnings and uncaught exceptions would otherwise reach stderr unredacted.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("stylebot").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("stylebot").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def log_format_of(settings: Settings) -> LogFormat:
    """The log_format setting: `text` or `json`."""
    raw = settings.log_format or "text"
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise ValueError(f"log_format should be text or json, got {raw!r}")
    return "json" if value == "json" else "text"
