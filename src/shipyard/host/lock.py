"""One deploy per app per host: an advisory file lock that says who holds it and since when.

The kernel drops an flock when its holder dies, even by SIGKILL, so a crash never leaves the app
locked; the holder's description is only read to explain a refusal.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from shipyard.errors import LockedError


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another shipyard process"
    who, what = holder.get("who", "someone"), holder.get("what", "a deploy")
    return f"{who} (pid {holder.get('pid', '?')}, {what}) since {holder.get('since', '?')}"


@contextmanager
def app_lock(lock_dir: Path, app: str, who: str, what: str, *, wait: bool = False) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{app}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(descriptor, path, app, wait)
        holder = {
            "who": who,
            "what": what,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(descriptor)


def _acquire(descriptor: int, path: Path, app: str, wait: bool) -> None:
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not wait:
                raise LockedError(
                    f"{app} is locked by {_holder_text(path)}; wait for it to finish or pass --wait to queue."
                ) from None
            time.sleep(0.2)
