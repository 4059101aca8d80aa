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


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port p such that p and p+1 are both free (the two slots).

    p+100 and p+101 must be free too: the lab's wrong-port image listens 100 above its slot, and it
    must fail by not answering, not by finding another server there."""
    for _ in range(200):
        port = free_port(host)
        if port < 65000 and all(is_free(port + offset, host) for offset in (1, 100, 101)):
            return port
    raise ShipyardError(f"no free pair of ports found on {host}.")


def free_port_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """`count` consecutive free ports: (first, last)."""
    for _ in range(100):
        first = free_port(host)
        if first + count < 65000 and all(is_free(port, host) for port in range(first, first + count)):
            return first, first + count - 1
    raise ShipyardError(f"no {count} consecutive free ports found on {host}.")
