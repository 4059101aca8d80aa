"""Everything a request handler or the background loop needs, built once per app by create_app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shipyard.controller.agent_auth import AgentTokenCache
from shipyard.controller.db import Database
from shipyard.controller.desired_cache import DesiredCache
from shipyard.controller.driver import Clock, RolloutDriver
from shipyard.controller.metrics import ControllerMetrics
from shipyard.controller.notifier import ChangeNotifier
from shipyard.controller.presence import Presence
from shipyard.controller.report_writer import BatchWriter
from shipyard.controller.reports import PendingReport, ReportMemory, StoredReport
from shipyard.controller.settings import ControllerSettings
from shipyard.controller.traffic import TrafficSamples


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

    @property
    def presence(self) -> Presence:
        return self.driver.presence

    def now(self) -> datetime:
        return self.clock()
