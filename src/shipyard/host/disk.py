"""Free disk where the engine keeps images and containers, the number a prune is run to raise."""

from __future__ import annotations

import os


def free_bytes(path: str) -> int | None:
    """Bytes an unprivileged writer may still use on `path`'s filesystem; None when it cannot be read.

    The engine may run on another machine (DOCKER_HOST over TCP) or its data root may be closed to this
    process: the agent then reports no number rather than one of another filesystem."""
    if not path:
        return None
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize
