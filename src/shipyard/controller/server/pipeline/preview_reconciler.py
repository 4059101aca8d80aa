"""The preview reconciler: a thread of the controller that keeps previews from outliving their PR.

Every `--preview-reconcile-interval` seconds (on the leader only, when replicas share PostgreSQL) it
runs one pass (server/previews.reconcile): previews whose TTL passed are torn down unless pinned,
builds of closed PRs are cancelled, teardowns are finished (database dropped, sealed secrets
deleted, closed), and an app over `previews.max` comes back to it. So a lost close webhook leaks
nothing; every step is idempotent, so a pass that fails halfway is simply done again.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from shipyard.controller.server import previews
from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.pipeline.periodic import PeriodicThread

log = structlog.get_logger("shipyard.controller.previews")


class PreviewReconciler(PeriodicThread):
    name = "shipyard-preview-reconciler"

    def __init__(
        self, context: ControllerContext, *, interval: float, active: Callable[[], bool] = lambda: True
    ) -> None:
        super().__init__(interval=interval, active=active)
        self._context = context

    def run_once(self) -> int:
        """One pass; `wake` (a preview was torn down) runs the next one now rather than at the next period."""
        done = previews.reconcile(self._context)
        if done:
            log.info("previews reconciled", changes=done)
        return done
