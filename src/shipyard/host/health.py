"""Health-gating: a new container must answer its health path `healthy_threshold` times in a row."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shipyard.domain.spec import HealthcheckSpec


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
