"""Start and stop the lab's own processes (controller, agents) by pid, across separate CLI calls."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from shipyard.errors import ShipyardError


def shipyard_process(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """`python -m shipyard.cli.main ARGS` in its own session, output to `log`; returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli.main", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environ,
            start_new_session=True,
        )
    return process.pid


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process (its whole session when it leads one), then SIGKILL after `timeout`."""
    if pid is None or not alive(pid):
        return
    _signal(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    _reap(pid)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def kill_now(pid: int | None, timeout: float = 10.0) -> None:
    """SIGKILL, as a crash would: no cleanup runs in the process. Returns once it is gone, because a busy
    machine can take well over a few milliseconds to tear down a process with many threads."""
    if pid is None or not alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid):
            return
        time.sleep(0.02)


def wait_http(
    url: str, timeout: float, what: str, log: Path | None = None, verify: ssl.SSLContext | bool = True
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-600:] if log and log.exists() else ""
    raise ShipyardError(f"{what} did not answer on {url} within {timeout:.0f} s. {tail}".strip())
