"""A TCP proxy that cuts one connection mid-response, for real: a broken download.

Between a client and a server on 127.0.0.1. Once armed with `cut_after(n)`, the next
response that passes `n` bytes on one connection is forwarded up to byte `n`, then
both sides are reset (RST, as a NAT box or a dying load balancer does). Every other
connection, before and after, passes untouched.

It also notes the HTTP requests that pass (`requests`: method, path and headers, as
sent on the wire), so a test can count what a client asked of the server, and can
hold every response for a while (`hold_responses`): a slow link to the server.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Self

__all__ = ["CuttingProxy", "NotedRequest"]


@dataclass(frozen=True)
class NotedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case


class _RequestReader:
    """Splits one connection's client-to-server bytes into HTTP/1.1 requests (bodies
    sized by Content-Length, as S3 clients send them) and notes each request."""

    def __init__(self, noted: list[NotedRequest], lock: threading.Lock) -> None:
        self._noted = noted
        self._lock = lock
        self._buffer = b""
        self._body_left = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._body_left:
                skipped = min(self._body_left, len(self._buffer))
                self._buffer = self._buffer[skipped:]
                self._body_left -= skipped
                if self._body_left:
                    return
            head, found, rest = self._buffer.partition(b"\r\n\r\n")
            if not found:
                return
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, path, _version = request_line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines)
            }
            assert "chunked" not in headers.get("transfer-encoding", ""), "chunked body"
            with self._lock:
                self._noted.append(NotedRequest(method, path, headers))
            self._buffer = rest
            self._body_left = int(headers.get("content-length", "0"))


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cuts = 0
        self.requests: list[NotedRequest] = []
        self._cut_at: int | None = None
        self._hold_s = 0.0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, byte_count: int) -> None:
        with self._lock:
            self._cut_at = byte_count

    def hold_responses(self, seconds: float) -> None:
        """Hold each response's bytes this long before passing them on (0: no more)."""
        with self._lock:
            self._hold_s = seconds

    def __enter__(self) -> Self:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        passed = 0
        reader = None if downstream else _RequestReader(self.requests, self._lock)
        try:
            while data := source.recv(64 * 1024):
                if reader is not None:
                    reader.feed(data)
                if downstream and (hold_s := self._hold_s):
                    time.sleep(hold_s)
                cut_at = self._take_cut(passed + len(data)) if downstream else None
                if cut_at is not None:
                    sink.sendall(data[: cut_at - passed])
                    _reset(sink)
                    _reset(source)
                    return
                sink.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _take_cut(self, would_have_passed: int) -> int | None:
        """The armed cut, if this connection is about to pass it (then disarmed)."""
        with self._lock:
            if self._cut_at is None or would_have_passed <= self._cut_at:
                return None
            cut_at, self._cut_at = self._cut_at, None
            self.cuts += 1
            return cut_at


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees the connection broken, not ended."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
