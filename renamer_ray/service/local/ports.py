"""Ports on 127.0.0.1 for the local stack: free ones to take, and a taken one refused with the setting that moves it."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (held open together while choosing)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


class PortInUse(RuntimeError):
    """A port the stack needs is taken; the message says which setting moves it."""


def require_free(port: int, what: str, how: str) -> None:
    """Refuse a port something listens on. SO_REUSEADDR as the servers themselves bind (asyncio,
    uvicorn): a port whose closed connections linger in TIME_WAIT is free to them, so it is free here."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(f"port {port} ({what}) is already in use: stop what uses it, or {how}") from None
