"""No job's arguments in any log line: prompts and style names belong to users.

Logs are kept and shipped elsewhere, beyond the reach of /style delete and /forgetme,
so what users typed must never reach them. Two guards, on the root handlers
(`stylebot.logs.configure_logging` installs the filter):

* arq logs each job's start as `job_id:function(arguments)`: the filter blanks the
  arguments (its result line, `log_results`, is off in the worker);
* libraries that log what they send or store at DEBUG (aiosqlite logs every statement
  with its parameters, prompts included; the chat libraries log updates with their
  text) have those records dropped, whatever level is configured;
* transformers and diffusers log past the root's handlers; the engine routes them
  there (`route_model_library_logs`);
* library lines known to quote a piece of a prompt have that piece replaced by
  `[redacted]`, whenever they come: diffusers' warning about a prompt longer than CLIP
  takes quotes its cut-off tail, decoded by the tokenizer (lower-cased, re-spaced), so
  it matches no text the job registered (`_QUOTING_LIBRARY_LINES`);
* while a job runs, the worker registers its private texts (`private_texts`), and any
  record from any logger and any thread that quotes one whole (an error that quotes a
  prompt, say) has it replaced by `[redacted]`.

Texts shorter than `_MIN_PRIVATE_LEN` are not registered, so the bot's own lines never
name a style (or quote a prompt): they name jobs, styles and outputs by id, and blobs
by key.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import threading
from collections.abc import Iterator

REDACTED = "[redacted]"
# arq.worker's job start line (arq 0.2x): elapsed, "job_id:function", arguments, extra.
_ARQ_START_LINE = "%6.2fs → %s(%s)%s"
# Shorter texts (a style named "ink") would blank common words of unrelated lines;
# such a text reaches a log only inside arq's start line, which is blanked anyway.
_MIN_PRIVATE_LEN = 4

# Library lines that quote part of a prompt: the text before the quote is kept (the
# operator learns that prompts are being cut), the quote is redacted.
_QUOTING_LIBRARY_LINES = (
    # diffusers' Stable Diffusion pipelines (1.x, 2.x, XL and the rest), 0.2x-0.3x.
    re.compile(r"(The following part of your input was truncated because .*? tokens): .*", re.S),
)

# Loggers whose DEBUG records carry data (statement parameters, message payloads).
_PAYLOAD_LOGGERS = ("aiosqlite", "discord", "telegram", "httpcore", "httpx", "hpack")

_lock = threading.Lock()
_texts: dict[int, tuple[str, ...]] = {}
_tokens = itertools.count()


@contextlib.contextmanager
def private_texts(*texts: str | None) -> Iterator[None]:
    """While inside, no log record of this process contains any of `texts`."""
    kept = tuple(t for t in texts if t and len(t) >= _MIN_PRIVATE_LEN)
    token = next(_tokens)
    with _lock:
        _texts[token] = kept
    try:
        yield
    finally:
        with _lock:
            del _texts[token]


class JobArgumentsFilter(logging.Filter):
    """Blanks arq's job arguments and the running jobs' private texts (module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and _from_payload_logger(record.name):
            return False
        if record.name == "arq.worker" and record.msg == _ARQ_START_LINE:
            args = record.args
            if isinstance(args, tuple) and len(args) == 4:
                record.args = (args[0], args[1], "…", args[3])
        _redact_quoting_library_line(record)
        with _lock:
            private = sorted({t for texts in _texts.values() for t in texts}, key=len, reverse=True)
        if not private:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        trace = record.exc_text or ""
        redacted_message, redacted_trace = message, trace
        for text in private:
            redacted_message = redacted_message.replace(text, REDACTED)
            redacted_trace = redacted_trace.replace(text, REDACTED)
        if redacted_trace != trace:
            # Formatters render exc_info afresh (the JSON one does): fold the redacted
            # trace into the message instead.
            redacted_message = f"{redacted_message}\n{redacted_trace}"
            record.exc_info, record.exc_text = None, None
        if redacted_message != message:
            record.msg, record.args = redacted_message, None
        return True


def route_model_library_logs() -> None:
    """transformers and diffusers log through handlers of their own, past the root's
    filters (a truncated prompt is quoted in full there): send theirs to the root."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (transformers_logging, diffusers_logging):
        library.disable_default_handler()
        library.enable_propagation()


def _redact_quoting_library_line(record: logging.LogRecord) -> None:
    if not record.name.startswith(("diffusers", "transformers")):
        return
    message = record.getMessage()
    for line in _QUOTING_LIBRARY_LINES:
        if (found := line.match(message)) is not None:
            record.msg, record.args = f"{found.group(1)}: {REDACTED}", None
            return


def _from_payload_logger(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in _PAYLOAD_LOGGERS)
