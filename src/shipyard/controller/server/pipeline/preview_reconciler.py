"""The preview reconciler: a thread of the controller that keeps previews from outliving their PR.

Every `--preview-reconcile-interval` seconds (on the leader only, when replicas share PostgreSQL) it
runs one pass (server/previews.reconcile): previews whose TTL passed are torn down unless pinned,
builds of closed PRs are cancelled, teardowns are finished (database dropped, sealed secrets
deleted, closed), and an app over `previews.max` comes back to it. So a lost close webhook leaks
nothing; every step is idempotent, so a pass that fails halfway is simply done again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from shipyard.controller.server import previews
from shipyard.controller.server.context import ControllerContext

log = structlog.get_logger("shipyard.controller.previews")


class PreviewReconciler:
    def __init__(
        self, context: ControllerContext, *, interval: float, active: Callable[[], bool] = lambda: True
    ) -> None:
        """`active`: asked before each pass; False skips it (a controller replica that does not lead)."""
        self._context, self._interval, self._active = context, interval, active
        self._stopping = threading.Event()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shipyard-preview-reconciler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A preview was torn down: finish it now rather than at the next period."""
        self._wakeup.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._active():
                    self.run_once()
            except Exception:  # a database hiccup must not end the reconciler; the next pass retries
                log.exception("preview reconciler pass failed")
            self._wakeup.wait(self._interval)
            self._wakeup.clear()

    def run_once(self) -> int:
        done = previews.reconcile(self._context)
        if done:
            log.info("previews reconciled", changes=done)
        return done
