"""Request and 5xx rates per app, from the haproxy counters the agents report: one sample a minute, an hour.

Agents report cumulative counters (haproxy's `req_tot` and `hrsp_5xx` of the app's backend). Here each
host's increase since its previous report is added to the app's bucket of the current minute; a counter
that went down (haproxy restarted) counts from zero. Kept in memory: a restarted controller starts a
new hour, which is all a sparkline needs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from shipyard.fleet_api.schemas.agent import TrafficCounters

MINUTES_KEPT = 60


@dataclass(frozen=True)
class MinuteSample:
    minute: int  # minutes since the epoch
    requests: int
    errors_5xx: int


def minute_of(at: datetime) -> int:
    return int(at.timestamp() // 60)


@dataclass
class TrafficSamples:
    _last: dict[tuple[int, str], TrafficCounters] = field(default_factory=dict)
    _minutes: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, host_id: int, app: str, counters: TrafficCounters, at: datetime) -> None:
        minute = minute_of(at)
        with self._lock:
            previous = self._last.get((host_id, app))
            self._last[(host_id, app)] = counters
            if previous is None:
                return  # the first report only sets the baseline
            requests = counters.requests - previous.requests
            errors = counters.responses_5xx - previous.responses_5xx
            if requests < 0 or errors < 0:  # haproxy restarted: its counters began again at zero
                requests, errors = counters.requests, counters.responses_5xx
            buckets = self._minutes.setdefault(app, {})
            bucket = buckets.setdefault(minute, [0, 0])
            bucket[0] += requests
            bucket[1] += errors
            for old in [m for m in buckets if m <= minute - MINUTES_KEPT]:
                del buckets[old]

    def last_hour(self, app: str, now: datetime) -> list[MinuteSample]:
        """One sample per minute of the last hour, oldest first; minutes without reports count zero."""
        current = minute_of(now)
        with self._lock:
            buckets = dict(self._minutes.get(app, {}))
        samples = []
        for minute in range(current - MINUTES_KEPT + 1, current + 1):
            requests, errors = buckets.get(minute, (0, 0))
            samples.append(MinuteSample(minute, requests, errors))
        return samples
