"""Ports picked together for one test server are different ports (a SeaweedFS server
was once given one port for two of its listeners, and failed to start)."""

from __future__ import annotations

import socket

from tests.support.processes import free_ports


def test_ports_picked_together_are_different_and_free() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports[:4]:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))  # nothing holds it once chosen
