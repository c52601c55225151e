"""The local stack's port check: a port something listens on is refused with the setting that moves
it; a port a stopped server left with connections in TIME_WAIT is free (a restart on the same ports)."""

from __future__ import annotations

import socket

import pytest

from renamer_ray.service.local.ports import PortInUse, require_free


def test_a_listening_port_is_refused_with_the_setting_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} \\(the HTTP API\\) is already in use.*API_PORT"):
            require_free(port, "the HTTP API", "set API_PORT=<another port>")


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first, so its end of the connection waits in TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    server.close()
    require_free(port, "the Ray dashboard", "pass --dashboard-port <another port>")
    with socket.socket() as again:  # ... and a server does start there
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
