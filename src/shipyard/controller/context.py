"""Everything a request handler or the background loop needs, built once per app by create_app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shipyard.controller.db import Database
from shipyard.controller.driver import Clock, RolloutDriver
from shipyard.controller.metrics import ControllerMetrics
from shipyard.controller.notifier import ChangeNotifier
from shipyard.controller.settings import ControllerSettings


@dataclass
class ControllerContext:
    settings: ControllerSettings
    db: Database
    notifier: ChangeNotifier
    driver: RolloutDriver
    metrics: ControllerMetrics
    clock: Clock

    def now(self) -> datetime:
        return self.clock()
