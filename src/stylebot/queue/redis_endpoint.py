"""Where Redis is and how to reach it safely: `RedisEndpoint`, a URL and its TLS files.

Every Redis client stylebot makes comes from here (the front end's, a worker's arq
pool, `stylebot status`, doctor, the metrics, the start-up check), so a `rediss://`
URL is held to the same rules everywhere: the server's certificate must chain to
`STYLEBOT_REDIS_TLS_CA_FILE` (unset: the system's CAs), it must be for the URL's
host name (redis-py 5 and arq check names only when told; they are told here), and
when the server asks for one (mutual TLS) the client presents
`STYLEBOT_REDIS_TLS_CERT_FILE` and `..._KEY_FILE`. A user name and password ride in
the URL (`rediss://user:password@host:6380/0`), checked by the server's ACL.

`connection_problem` turns what a failed connection raised into one line that
says which of these went wrong (untrusted CA, wrong host name, a server that does
not speak TLS, a refused password...), for doctor, status and the start-up check.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import redis
from arq.connections import RedisSettings

from stylebot.setting_rules import shown_url

if TYPE_CHECKING:
    from stylebot.config import Settings


# OpenSSL's verify codes (X509_V_ERR_*) that need their own advice.
_NAME_MISMATCH = (62, 64)  # host name, IP address
_CERT_EXPIRED = 10
_CERT_NOT_YET_VALID = 9


@dataclass(frozen=True)
class RedisEndpoint:
    """A Redis URL (`redis://`, `rediss://` or `unix://`) and, for `rediss://`, the
    files its TLS is checked with; the files are ignored for the other schemes."""

    url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> RedisEndpoint:
        """The configured TLS files with `url` (default: the REDIS_URL setting; the
        embedded Redis's unix:// URL when that is what the process runs on)."""
        chosen = url or settings.redis_url
        if not chosen:
            raise ValueError("no Redis URL: REDIS_URL is unset and no embedded Redis runs")
        return cls(
            chosen,
            ca_file=settings.redis_tls_ca_file,
            cert_file=settings.redis_tls_cert_file,
            key_file=settings.redis_tls_key_file,
        )

    @classmethod
    def of(cls, url_or_endpoint: str | RedisEndpoint) -> RedisEndpoint:
        """An endpoint as is; a bare URL with the system's CAs and no client certificate."""
        if isinstance(url_or_endpoint, RedisEndpoint):
            return url_or_endpoint
        return cls(url_or_endpoint)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "rediss"

    @property
    def shown(self) -> str:
        """The URL without its password."""
        return shown_url(self.url)

    @property
    def host(self) -> str:
        parts = urlsplit(self.url)
        return parts.path if parts.scheme == "unix" else (parts.hostname or "localhost")

    def tls_options(self) -> dict[str, Any]:
        """redis-py's SSL keyword arguments: certificates required, host name checked."""
        if not self.tls:
            return {}
        return {
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_ca_certs": str(self.ca_file) if self.ca_file else None,
            "ssl_certfile": str(self.cert_file) if self.cert_file else None,
            "ssl_keyfile": str(self.key_file) if self.key_file else None,
        }

    def client(self, **options: Any) -> redis.Redis:
        """A synchronous client (status, doctor, metrics, start-up checks)."""
        client: redis.Redis = redis.Redis.from_url(self.url, **self.tls_options(), **options)
        return client

    def arq_settings(self) -> RedisSettings:
        """arq's connection settings: its DSN parser plus what it leaves out (TLS
        checks; percent-escapes in the user name and password, which it keeps)."""
        settings = RedisSettings.from_dsn(self.url)
        parts = urlsplit(self.url)
        settings.username = unquote(parts.username) if parts.username else None
        settings.password = unquote(parts.password) if parts.password else None
        if self.tls:
            settings.ssl_cert_reqs = "required"
            settings.ssl_check_hostname = True
            settings.ssl_ca_certs = str(self.ca_file) if self.ca_file else None
            settings.ssl_certfile = str(self.cert_file) if self.cert_file else None
            settings.ssl_keyfile = str(self.key_file) if self.key_file else None
        return settings


def _accepts_connections(endpoint: RedisEndpoint, timeout: float = 1.0) -> bool:
    """Whether a plain TCP connection to the endpoint's host and port succeeds."""
    parts = urlsplit(endpoint.url)
    try:
        with socket.create_connection((endpoint.host, parts.port or 6379), timeout=timeout):
            return True
    except OSError:
        return False


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or during (redis-py wraps an SSL
    error into a ConnectionError raised inside the handler)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_problem(exc: BaseException, endpoint: RedisEndpoint) -> str:
    """One line on why a connection to `endpoint` failed, naming the setting to fix."""
    chain = _chain(exc)
    text = " ".join(str(error) for error in chain)
    where = endpoint.shown
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None or "CERTIFICATE_VERIFY_FAILED" in text:
        code = verify.verify_code if verify is not None else None
        reason = verify.verify_message if verify is not None else text
        if code in _NAME_MISMATCH or "mismatch" in text:
            return (
                f"the TLS certificate of the Redis at {where} is not for the host name "
                f"{endpoint.host!r} ({reason}): use a host name the certificate names in "
                "REDIS_URL, or give the server a certificate for this one"
            )
        if code in (_CERT_EXPIRED, _CERT_NOT_YET_VALID):
            return f"the TLS certificate of the Redis at {where} is out of date ({reason})"
        return (
            f"the TLS certificate of the Redis at {where} is not trusted ({reason}): set "
            "STYLEBOT_REDIS_TLS_CA_FILE to the CA certificate that signed it"
        )
    for name, path in (
        ("STYLEBOT_REDIS_TLS_CA_FILE", endpoint.ca_file),
        ("STYLEBOT_REDIS_TLS_CERT_FILE", endpoint.cert_file),
        ("STYLEBOT_REDIS_TLS_KEY_FILE", endpoint.key_file),
    ):
        if endpoint.tls and path is not None and not path.is_file():
            return f"{name}={path} is not a readable file"
    upper = text.upper()
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        return (
            f"the server at {where} does not speak TLS: use redis:// for it, or the "
            "port its TLS listens on"
        )
    if endpoint.tls and isinstance(exc, redis.TimeoutError) and _accepts_connections(endpoint):
        # TCP connects, the handshake gets no answer: a plain-text Redis waits for a command.
        return (
            f"the server at {where} accepts connections but does not answer TLS: if it is "
            "a plain-text Redis use redis://, else the port its TLS listens on"
        )
    hung_up = "EOF OCCURRED IN VIOLATION OF PROTOCOL" in upper or "UNEXPECTED_EOF" in upper
    if endpoint.tls and hung_up and endpoint.cert_file is None:
        # TLS 1.3: the server's refusal of a client without a certificate arrives as a
        # closed connection after the handshake.
        return (
            f"the Redis at {where} closed the TLS connection: it wants a client certificate "
            "(mutual TLS): set STYLEBOT_REDIS_TLS_CERT_FILE and STYLEBOT_REDIS_TLS_KEY_FILE"
        )
    if endpoint.tls and hung_up:
        return (
            f"the Redis at {where} closed the TLS connection: it may not trust this "
            "client's certificate (STYLEBOT_REDIS_TLS_CERT_FILE): use one its CA signed"
        )
    if "CERTIFICATE_REQUIRED" in upper or "ALERT_BAD_CERTIFICATE" in upper:
        return (
            f"the Redis at {where} wants a client certificate (mutual TLS): set "
            "STYLEBOT_REDIS_TLS_CERT_FILE and STYLEBOT_REDIS_TLS_KEY_FILE to one its CA signed"
        )
    if "ALERT_UNKNOWN_CA" in upper:
        return (
            f"the Redis at {where} does not trust this client's certificate "
            "(STYLEBOT_REDIS_TLS_CERT_FILE): use one signed by the CA it trusts"
        )
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in upper:
        return (
            f"the Redis at {where} refused the user name and password in REDIS_URL "
            "(its ACL has no such user, the password is wrong, or the user is off)"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in upper:
        return f"the Redis user in REDIS_URL may not do this (its ACL): {exc}"
    if not endpoint.tls and (
        "Connection closed by server" in text or "Connection reset by peer" in text
    ):
        return (
            f"the server at {where} closed the connection at once: if it wants TLS, "
            "use rediss:// (and STYLEBOT_REDIS_TLS_CA_FILE)"
        )
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot reach Redis at {where}: {first_line}"
