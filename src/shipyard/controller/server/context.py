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

    @property
    def presence(self) -> Presence:
        return self.driver.presence

    def now(self) -> datetime:
        return self.clock()
