"""A real Redis client that counts its round trips to the server.

Each request written to the socket is one round trip: a single command, or a whole
pipeline (redis-py writes a pipeline's commands at once). Counting them is how the
queue's overhead per generation is guarded without timing anything (issue 19): a
command added to the path of every event shows up here, on any machine load.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import UnixDomainSocketConnection


class RoundTrips:
    """How many requests the client sent, and the first word of each."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self._sent = asyncio.Condition()

    @property
    def count(self) -> int:
        return len(self.commands)

    def clear(self) -> None:
        self.commands.clear()

    async def note(self, command: str) -> None:
        async with self._sent:
            self.commands.append(command)
            self._sent.notify_all()

    async def until_sent(self, command: str, within: float = 10) -> None:
        """Wait until a request named `command` was sent; fail naming those that were."""
        try:
            async with asyncio.timeout(within), self._sent:
                await self._sent.wait_for(lambda: command in self.commands)
        except TimeoutError:
            raise AssertionError(f"no {command} within {within} s: {self.commands}") from None


def counting_client(socket_path: Path) -> tuple[Redis, RoundTrips]:
    """A client of the Redis at `socket_path`, and the round trips it makes from now on
    (connections' handshakes left out)."""
    trips = RoundTrips()

    class CountingConnection(UnixDomainSocketConnection):
        connecting = False

        async def on_connect(self) -> None:
            # A new connection's handshake (CLIENT SETINFO, ...) is the pool's, not the
            # caller's: only requests made on an open connection count.
            self.connecting = True
            try:
                await super().on_connect()
            finally:
                self.connecting = False

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.connecting:
                await trips.note(_first_word(command))
            await super().send_packed_command(command, check_health)

    pool = ConnectionPool(connection_class=CountingConnection, path=str(socket_path))
    return Redis(connection_pool=pool), trips


def _first_word(packed: Any) -> str:
    """The command name of a packed request (for messages), e.g. 'EVAL' or 'MULTI'."""
    chunks = packed if isinstance(packed, list | tuple) else [packed]
    data = b"".join(bytes(chunk) for chunk in chunks)
    # RESP: *<n>\r\n$<len>\r\n<NAME>\r\n...
    parts = data.split(b"\r\n")
    return parts[2].decode(errors="replace") if len(parts) > 2 else "?"
