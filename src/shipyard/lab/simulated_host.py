"""What a simulated host reports: stands in for an agent where only the controller's side is measured."""

from __future__ import annotations

from shipyard.fleet_api.schemas.agent import AppReport, DesiredApp


def succeeded_report(app: DesiredApp) -> AppReport:
    """`app`'s desired release switched to and healthy, as an agent reports a finished deployment."""
    return AppReport(
        app=app.app,
        step="done",
        active_release=app.release_id,
        release=app.release_id,
        health="healthy",
        outcome="succeeded",
    )
