"""Ports for the lab, the demo and the tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from shipyard.errors import ShipyardError


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the ephemeral range: the kernel never hands it to an outgoing connection,
    so it stays free between choosing it and binding it (a slot port is bound only at deploy)."""
    high = min(_ephemeral_low(), 65000) - 2
    for _ in range(500):
        port = random.randint(20000, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    raise ShipyardError(f"no free port found between 20000 and {high} on {host}.")
