"""Agent liveness kept in memory: every request marks its host seen; the rollout loop flushes in batches.

Writing last_seen on every long-poll would make each one a write transaction; instead the latest time
per host lives here, the background tick stores the pending ones with one executemany UPDATE every
few seconds, and lost-host detection consults the in-memory times as well as the stored ones.
"""

from __future__ import annotations

import threading
from datetime import datetime


class Presence:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, datetime] = {}
        self._pending: dict[int, datetime] = {}

    def seen(self, host_id: int, at: datetime) -> None:
        self.seen_many([host_id], at)

    def seen_many(self, host_ids: list[int], at: datetime) -> None:
        with self._lock:
            for host_id in host_ids:
                if host_id not in self._latest or self._latest[host_id] < at:
                    self._latest[host_id] = at
                    self._pending[host_id] = at

    def latest(self) -> dict[int, datetime]:
        with self._lock:
            return dict(self._latest)

    def take_pending(self) -> dict[int, datetime]:
        """The times not stored yet; the caller stores them or gives them back with restore()."""
        with self._lock:
            pending, self._pending = self._pending, {}
            return pending

    def restore(self, pending: dict[int, datetime]) -> None:
        with self._lock:
            for host_id, at in pending.items():
                if host_id not in self._pending or self._pending[host_id] < at:
                    self._pending[host_id] = at

    def forget(self, host_id: int) -> None:
        with self._lock:
            self._latest.pop(host_id, None)
            self._pending.pop(host_id, None)
