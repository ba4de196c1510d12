"""A TCP proxy that cuts one connection mid-response, for real: a broken download.

Between a client and a server on 127.0.0.1. Once armed with `cut_after(n)`, the next
response that passes `n` bytes on one connection is forwarded up to byte `n`, then
both sides are reset (RST, as a NAT box or a dying load balancer does). Every other
connection, before and after, passes untouched.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Self

__all__ = ["CuttingProxy"]


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cuts = 0
        self._cut_at: int | None = None
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, byte_count: int) -> None:
        with self._lock:
            self._cut_at = byte_count

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
        try:
            while data := source.recv(64 * 1024):
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
