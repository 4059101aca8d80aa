"""Health-gating: a new container must answer its health path `healthy_threshold` times in a row."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from shipyard.domain.spec import HealthcheckSpec, ProcessHealthSpec


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    reason: str
    seconds: float


def probe(url: str, timeout: float) -> tuple[bool, str]:
    """One GET of a slot's plain-http health URL. The standard library's client, not httpx: a
    rollback to a warm standby is one probe, and loading httpx would cost more than the probe."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", target)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, f"no answer ({type(exc).__name__})"
    finally:
        connection.close()
    if status == 200:
        return True, "200 OK"
    return False, f"answered {status}"


def wait_healthy(
    url: str, check: HealthcheckSpec, container_status: Callable[[], tuple[str, int | None]]
) -> HealthResult:
    """Poll until healthy, the container stops running, or the deadline passes."""
    started = time.monotonic()
    passes = 0
    last = "not checked yet"
    while time.monotonic() - started < check.deadline:
        status, exit_code = container_status()
        if status != "running":
            detail = f" with code {exit_code}" if exit_code is not None else ""
            return HealthResult(False, f"the container is {status}{detail}", time.monotonic() - started)
        ok, last = probe(url, check.timeout)
        passes = passes + 1 if ok else 0
        if passes >= check.healthy_threshold:
            return HealthResult(True, last, time.monotonic() - started)
        time.sleep(check.interval)
    return HealthResult(
        False, f"not healthy within {check.deadline:g} s (last check: {last})", time.monotonic() - started
    )


class WorkerProbe(Protocol):
    """What a worker's health check reads from the engine."""

    def status(self, name: str) -> tuple[str, int | None]: ...
    def restarts(self, name: str) -> int: ...
    def exec(self, name: str, argv: Sequence[str], timeout: float) -> tuple[int, str]: ...


def wait_worker_healthy(
    name: str, health: ProcessHealthSpec, engine: WorkerProbe, *, interval: float = 0.25
) -> HealthResult:
    """A worker is healthy once its command exits 0 inside it (`exec`), or once it has kept running
    for `running_for` seconds; exiting or being restarted meanwhile fails it at once."""
    started = time.monotonic()
    first_restarts = engine.restarts(name)
    limit = health.running_for if health.running_for is not None else health.timeout
    last = "not checked yet"
    while True:
        elapsed = time.monotonic() - started
        status, exit_code = engine.status(name)
        if status != "running":
            detail = f" with code {exit_code}" if exit_code is not None else ""
            return HealthResult(False, f"the container is {status}{detail}", elapsed)
        if engine.restarts(name) != first_restarts:
            return HealthResult(False, "the container restarted (its process exited)", elapsed)
        if health.running_for is not None:
            if elapsed >= health.running_for:
                return HealthResult(True, f"running for {elapsed:.1f} s without a restart", elapsed)
        else:
            assert health.exec is not None  # one of the two, by the spec
            code, output = engine.exec(name, health.exec, health.timeout)
            if code == 0:
                return HealthResult(True, "its health command exited 0", time.monotonic() - started)
            last = f"its health command exited {code}" + (
                f": {output.strip()[-200:]}" if output.strip() else ""
            )
            if elapsed >= limit:
                return HealthResult(False, f"not healthy within {limit:g} s ({last})", elapsed)
        time.sleep(max(0.0, min(interval, limit - elapsed)) or interval / 5)
