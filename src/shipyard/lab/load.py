"""A small load generator: N client threads, keep-alive or a new connection per request.

Used by the demo and the tests to prove that nobody sees an error during a swap. Every non-2xx
answer and every socket error counts as failed.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadStats:
    sent: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)
    # (body before, body after) each time a client's answer changed: a swap seen by one client
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class LoadGenerator:
    def __init__(
        self,
        url: str,
        clients: int = 8,
        keep_alive: bool = True,
        path: str | None = None,
        host_header: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = path or parts.path or "/"
        self.clients = clients
        self.keep_alive = keep_alive
        self.host_header = host_header  # a Host other than the URL's (a preview's host name)
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> LoadGenerator:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        return self.stats

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self) -> None:
        connection: http.client.HTTPConnection | None = None
        headers = {} if self.keep_alive else {"Connection": "close"}
        last_body: str | None = None
        if self.host_header:
            headers["Host"] = self.host_header
        while not self._stop.is_set():
            started = time.perf_counter()
            outcome = "ok"
            body = ""
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                connection.request("GET", self.path, headers=headers)
                response = connection.getresponse()
                body = response.read().decode(errors="replace").strip()[-40:]
                if not 200 <= response.status < 300:
                    outcome = f"HTTP {response.status}"
                if not self.keep_alive or response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                if connection is not None:
                    connection.close()
                connection = None
            self._record(outcome, body, time.perf_counter() - started)
            if outcome == "ok":
                if last_body is not None and body != last_body:
                    with self._lock:
                        self.stats.changes[(last_body, body)] += 1
                last_body = body
        if connection is not None:
            connection.close()

    def _record(self, outcome: str, body: str, seconds: float) -> None:
        with self._lock:
            self.stats.sent += 1
            self.stats.latencies.append(seconds)
            if outcome == "ok":
                self.stats.bodies[body] += 1
            else:
                self.stats.failed += 1
                self.stats.failures[outcome] += 1
