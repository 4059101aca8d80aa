"""Which controller URL a client uses, and when a failed request moves on to the next one.

Pure: the client (client.py) does the I/O and asks here. A client given several URLs (controller
replicas, or one load balancer) sticks to the one that last answered; a request that fails in a way
that says nothing was done there tries the others, in order, each once:

- could not connect (refused, unreachable, TLS handshake failed), or answered 502/503: any request;
- also a timeout, a connection dropped mid-request, or a 500/504: only requests safe to repeat
  (GET, HEAD, PUT, DELETE, or a caller that says so, like an agent's report), since the first
  replica may have done it before failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.errors import ConfigError
from shipyard.fleet_api.url_policy import check_controller_url

REPEATABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
NOTHING_DONE_STATUSES = frozenset({502, 503})
MAYBE_DONE_STATUSES = frozenset({500, 504})
MAX_URLS = 16


def controller_urls(urls: str | Sequence[str], *, insecure_http: bool = False) -> tuple[str, ...]:
    """Every URL of `urls` (each item may itself list several, comma-separated), checked, in order."""
    items = [urls] if isinstance(urls, str) else list(urls)
    found: list[str] = []
    for item in items:
        for part in item.split(","):
            if part.strip():
                url = check_controller_url(part, insecure_http=insecure_http)
                if url not in found:
                    found.append(url)
    if not found:
        raise ConfigError(
            "no controller URL given; pass --controller URL (repeatable) or SHIPYARD_CONTROLLER."
        )
    if len(found) > MAX_URLS:
        raise ConfigError(f"{len(found)} controller URLs is too many; give at most {MAX_URLS}.")
    return tuple(found)


@dataclass(frozen=True)
class Failure:
    """How one attempt failed: `reached` False when no connection was made, else the status (or None
    when the connection broke or timed out before an answer)."""

    reached: bool
    status: int | None = None


def fails_over(method: str, failure: Failure, *, repeatable: bool = False) -> bool:
    """Whether the request may be tried at the next URL after `failure`."""
    if not failure.reached or failure.status in NOTHING_DONE_STATUSES:
        return True
    safe = repeatable or method.upper() in REPEATABLE_METHODS
    return safe and (failure.status is None or failure.status in MAYBE_DONE_STATUSES)


@dataclass
class Endpoints:
    """The URLs in order, and the one in use: the last that answered (the first, at the start)."""

    urls: tuple[str, ...]
    current: int = 0

    def attempts(self) -> list[int]:
        """The indexes to try for one request: the current URL, then the others in their order."""
        count = len(self.urls)
        return [(self.current + step) % count for step in range(count)]

    def answered(self, index: int) -> None:
        self.current = index
