"""Everything a request handler or the background loop needs, built once per app by create_app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shipyard.controller.server.agent_auth import AgentTokenCache
from shipyard.controller.server.desired_cache import DesiredCache
from shipyard.controller.server.driver import Clock, RolloutDriver
from shipyard.controller.server.exec_relay import ExecRelay
from shipyard.controller.server.metrics import ControllerMetrics
from shipyard.controller.server.notifier import ChangeNotifier
from shipyard.controller.server.presence import Presence
from shipyard.controller.server.report_writer import BatchWriter
from shipyard.controller.server.settings import ControllerSettings
from shipyard.controller.server.traffic import TrafficSamples
from shipyard.controller.store.db import Database
from shipyard.controller.store.leadership import Leadership
from shipyard.controller.store.reports import PendingReport, ReportMemory, StoredReport
from shipyard.domain.previews import PreviewDatabases
from shipyard.domain.spec import PreviewDatabaseSpec

# Builds the PreviewDatabases of an app's `previews.database` from a reader of the preview store.
PreviewDatabasesFactory = Callable[[PreviewDatabaseSpec, Callable[[str], str]], PreviewDatabases]


@dataclass
class ControllerContext:
    settings: ControllerSettings
    db: Database
    notifier: ChangeNotifier
    driver: RolloutDriver
    metrics: ControllerMetrics
    clock: Clock
    desired: DesiredCache
    agent_tokens: AgentTokenCache
    reports: BatchWriter[PendingReport, StoredReport]
    report_memory: ReportMemory
    traffic: TrafficSamples = field(default_factory=TrafficSamples)
    # Whether this replica runs the rollout loop, the scheduler and the notifier (always, on SQLite).
    leadership: Leadership = field(default_factory=Leadership)
    # Sends messages to the other replicas (PostgreSQL); None on SQLite. Set when the app starts.
    ask_leader_to_tick: Callable[[], None] | None = None
    # The exec sessions whose client waits on this process (shipyard exec --env).
    exec_relay: ExecRelay = field(default_factory=ExecRelay)
    # None: shipyard.adapters.preview_databases (server/previews.py imports it when first needed).
    preview_databases: PreviewDatabasesFactory | None = None
    # Wakes the job worker (when this process runs jobs) after a preview's build is queued.
    wake_jobs: Callable[[], None] | None = None
    # Wakes the preview reconciler after a teardown, so it finishes it before its next period.
    wake_preview_reconciler: Callable[[], None] | None = None

    @property
    def presence(self) -> Presence:
        return self.driver.presence

    def now(self) -> datetime:
        return self.clock()
