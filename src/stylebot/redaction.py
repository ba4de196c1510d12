"""Credentials never reach a terminal, a log file or a chat message.

Two nets, both applied by `redact`:

* the values themselves: every process registers its settings' secrets
  (`register_secrets`), so a token or password is replaced wherever it shows up,
  in a message, an exception or a traceback, whatever library printed it;
* their shapes, for text written before the settings loaded (or by another
  process): the password of any `scheme://user:password@host` URL, Telegram bot
  tokens (also inside `https://api.telegram.org/bot<TOKEN>/...`, which httpx and
  python-telegram-bot log), and Discord bot tokens.

`logs.configure_logging` installs it on every log line and on uncaught
exceptions; the CLI passes its own messages through it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from typing import Protocol, TextIO
from urllib.parse import quote, unquote, urlsplit

from stylebot.config import Settings

REDACTED = "***"
# Shorter values are not secrets worth the false positives (a password "a").
_MIN_SECRET_LENGTH = 4
# Credentials that libraries read from the environment rather than from our settings.
_SECRET_ENVIRONMENT = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "REDIS_PASSWORD",
)

# The password runs to the '@' even across a '/' that should have been percent-encoded
# (`redis://:pa/ss@host`): a host with a port and a path with an '@' is over-redacted,
# which is the safe side.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):[^@\s]+@")
# Credentials passed as URL query parameters (redis-py's `?password=`, API keys).
_QUERY_SECRET_NAMES = (
    "password|passwd|pwd|pass|token|access_token|secret|secret_key|client_secret"
    "|key|api_key|apikey|access_key|signature|sig|auth"
)
_QUERY_SECRET = re.compile(rf"(?P<head>[?&](?:{_QUERY_SECRET_NAMES})=)[^&#\s]+", re.IGNORECASE)
# Standing alone, or right after `bot` as in Telegram's API paths.
_TELEGRAM_TOKEN = re.compile(r"(?:(?<=bot)|(?<![A-Za-z0-9_-]))\d{5,}:[A-Za-z0-9_-]{30,}")
_DISCORD_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}"
)

_lock = threading.Lock()
_known: frozenset[str] = frozenset()


def secrets_of(settings: Settings) -> set[str]:
    """Every credential the settings (and the environment libraries read) hold."""
    found: set[str] = set()
    for token in (settings.discord_token, settings.telegram_token, settings.s3_secret_access_key):
        if token:
            found.add(token)
    urls = (settings.redis_url, settings.telegram_api_url, settings.c2pa_tsa_url)
    for url in (*urls, settings.s3_endpoint_url):
        if url:
            found |= _url_credentials(url)
    for name in _SECRET_ENVIRONMENT:
        if os.environ.get(name):
            found.add(os.environ[name])
    return found


def _url_credentials(url: str) -> set[str]:
    """The URL's password and the values of its credential-named query parameters, as
    written, decoded and encoded."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return set()
    found += [match.group(0)[len(match.group("head")) :] for match in _QUERY_SECRET.finditer(url)]
    return {form for value in found for form in (value, unquote(value), quote(value, safe=""))}


def register_secrets(values: Iterable[str]) -> None:
    """Add values that `redact` replaces from now on, in this process."""
    global _known
    variants: set[str] = set()
    for value in values:
        if len(value) < _MIN_SECRET_LENGTH:
            continue
        variants.add(value)
        variants.add(json.dumps(value)[1:-1])  # as it appears inside a JSON log line
        variants.add(repr(value)[1:-1])  # ... and inside a repr() in a message
    with _lock:
        _known = _known | variants


def redact(text: str) -> str:
    """`text` with every known secret and every credential-shaped string replaced."""
    for secret in sorted(_known, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", text)
    text = _QUERY_SECRET.sub(rf"\g<head>{REDACTED}", text)
    text = _TELEGRAM_TOKEN.sub(REDACTED, text)
    return _DISCORD_TOKEN.sub(REDACTED, text)


class TextOutput(Protocol):
    """Where a command prints its report: `print(file=...)`, and whether it is a terminal."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


class RedactingStream:
    """A text stream that redacts what is written through it (print(file=...))."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()
