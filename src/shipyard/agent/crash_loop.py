"""A worker that crash-loops after its start: pure, tested as data.

A worker's start is health-gated (running_for or exec, host/health.py); after that the engine's
restart policy brings it back whenever its process exits, and nobody would notice a loop. The agent
samples each worker container's RestartCount whenever it observes the host; a container restarted
`max_restarts` times within `restart_window` seconds (per process, `health:` in shipyard.yml, default
3 in 60 s) makes the host report the app unhealthy with a message naming the process and the count,
which the controller's rollout treats like a failed health check. Counts start when the agent first
sees the container (a new release's containers are new), so restarts before that are not held against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.domain.spec import DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_WINDOW

RECHECK_S = 3.0  # how soon to look again while a worker is new or restarting


@dataclass(frozen=True)
class RestartLimit:
    max_restarts: int = DEFAULT_MAX_RESTARTS
    window: float = DEFAULT_RESTART_WINDOW


@dataclass(frozen=True)
class WorkerSample:
    """One worker container of the serving release as observed now."""

    process: str
    container: str  # its id: a new container starts a new count
    restart_count: int


@dataclass(frozen=True)
class CrashLoop:
    process: str
    restarts: int  # within the window
    window: float
    restart_count: int  # the engine's total for the container

    def describe(self) -> str:
        return (
            f"process {self.process} is crash-looping: restarted {self.restarts} times in the last "
            f"{self.window:g} s ({self.restart_count} restarts in all)"
        )


def restart_limits(spec: Mapping[str, Any]) -> dict[str, RestartLimit]:
    """Each process's limit, from a release's spec snapshot (the defaults where `health:` says nothing)."""
    limits = {}
    for name, process in (spec.get("processes") or {}).items():
        health = (process or {}).get("health") or {} if isinstance(process, Mapping) else {}
        limits[str(name)] = RestartLimit(
            int(health.get("max_restarts", DEFAULT_MAX_RESTARTS)),
            float(health.get("restart_window", DEFAULT_RESTART_WINDOW)),
        )
    return limits


def restarts_within(samples: Sequence[tuple[float, int]], now: float, window: float) -> int:
    """Restarts between the count at `now - window` (the last sample then, else the first) and the last."""
    if not samples:
        return 0
    start = now - window
    baseline = samples[0][1]
    for at, count in samples:
        if at <= start:
            baseline = count
    return max(0, samples[-1][1] - baseline)


@dataclass
class CrashLoopWatch:
    """RestartCount samples per worker container, kept only as long as a window needs them."""

    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    seen_by_app: dict[str, set[str]] = field(default_factory=dict)

    def observe(
        self,
        app: str,
        workers: Sequence[WorkerSample],
        limits: Mapping[str, RestartLimit],
        now: float,
    ) -> CrashLoop | None:
        """Record this observation of the app's workers; the worst crash loop among them, if any."""
        current = {worker.container for worker in workers}
        for gone in self.seen_by_app.get(app, set()) - current:
            self.samples.pop(gone, None)
        self.seen_by_app[app] = current
        worst: CrashLoop | None = None
        for worker in workers:
            limit = limits.get(worker.process, RestartLimit())
            history = self.samples.setdefault(worker.container, [])
            history.append((now, worker.restart_count))
            # What a window needs: the samples in it and the last one before it.
            older = [index for index, (at, _) in enumerate(history) if at <= now - limit.window]
            if len(older) > 1:
                del history[: older[-1]]
            restarts = restarts_within(history, now, limit.window)
            if restarts >= limit.max_restarts and (worst is None or restarts > worst.restarts):
                worst = CrashLoop(worker.process, restarts, limit.window, worker.restart_count)
        return worst

    def next_check(self, now: float, window: float = DEFAULT_RESTART_WINDOW) -> float | None:
        """Seconds until the agent should look again: soon while a worker is new (first seen within
        `window`) or restarted within it; None when every worker has been quiet that long."""
        for history in self.samples.values():
            first_at = history[0][0]
            if now - first_at < window or restarts_within(history, now, window) > 0:
                return RECHECK_S
        return None
