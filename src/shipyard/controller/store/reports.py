"""Agent reports stored in batches: a few set-based statements for a whole burst of reports.

A report replaces what its host last said about each app (one host_apps row per host and app) and
sets the host's status: ready when every app it should run is active and healthy, converging
otherwise. A batch reads its hosts, the apps and the existing rows once, then writes with one
executemany per statement shape, so 250 reports cost about as much as a handful of single ones.
A report from a host removed since its token was checked is refused on its own; the others are kept.

ReportMemory lets the request handler skip the write when a host repeats what was last stored for it
(the steady state: every long-poll answer is followed by an unchanged report).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from shipyard.controller.errors import UnauthorizedError
from shipyard.controller.store.hosts import CONVERGING, READY
from shipyard.controller.store.models import App, Host, HostApp, UtcDateTime
from shipyard.controller.store.prunes import PruneResult, store_results
from shipyard.errors import ShipyardError
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredState, ReportAck

REMOVED = "this host was removed from the controller; register it again."


@dataclass(frozen=True)
class PendingReport:
    host_id: int
    body: AgentReport
    desired: DesiredState  # the host's desired state when the report arrived
    received_at: datetime


@dataclass(frozen=True)
class StoredReport:
    ack: ReportAck
    app_ids: list[int]  # the known apps it mentioned


@dataclass
class _HostState:
    name: str
    agent_version: str
    last_seen: datetime | None
    status: str = CONVERGING
    versions: dict[str, Any] | None = None  # None: unchanged
    disk_free: int | None = None  # None: not measured in these reports


# (active_release_id, health) per (host_id, app_id): all the status rule needs
_Running = dict[tuple[int, int], tuple[int | None, str]]


def converged(host_id: int, desired: DesiredState, running: _Running, app_ids: dict[str, int]) -> str:
    """Ready when every desired release is the active one and healthy, converging otherwise."""
    for app in desired.apps:
        app_id = app_ids.get(app.app)
        current = running.get((host_id, app_id)) if app_id is not None else None
        if current is None or current != (app.release_id, "healthy"):
            return CONVERGING
    return READY


def store_reports(session: Session, reports: Sequence[PendingReport]) -> list[StoredReport | ShipyardError]:
    """Store `reports` in order (a later report of a host wins); one outcome per report."""
    host_ids = sorted({report.host_id for report in reports})
    found = session.execute(select(Host.id, Host.name, Host.agent_version).where(Host.id.in_(host_ids))).all()
    states = {row.id: _HostState(row.name, row.agent_version, None) for row in found}
    app_ids = {name: app_id for app_id, name in session.execute(select(App.id, App.name))}
    existing = session.execute(
        select(HostApp.host_id, HostApp.app_id, HostApp.active_release_id, HostApp.health).where(
            HostApp.host_id.in_(host_ids)
        )
    ).all()
    running: _Running = {(r.host_id, r.app_id): (r.active_release_id, r.health) for r in existing}
    stored_pairs = set(running)
    rows: dict[tuple[int, int], dict[str, object]] = {}
    prune_results: list[PruneResult] = []
    outcomes: list[StoredReport | ShipyardError] = []
    for report in reports:
        state = states.get(report.host_id)
        if state is None:
            outcomes.append(UnauthorizedError(REMOVED))
            continue
        mentioned = []
        for item in report.body.apps:
            app_id = app_ids.get(item.app)
            if app_id is None:  # agents report what they run; only releases and admins create apps
                continue
            key = (report.host_id, app_id)
            running[key] = (item.active_release, item.health)
            rows[key] = {
                "b_host": report.host_id,
                "b_app": app_id,
                "b_active": item.active_release,
                "b_release": item.release,
                "b_step": item.step,
                "b_health": item.health,
                "b_outcome": item.outcome,
                "b_message": item.message,
                "b_maintenance": item.maintenance,
                "b_at": report.received_at,
            }
            mentioned.append(app_id)
        if report.body.agent_version:
            state.agent_version = report.body.agent_version
        if report.body.versions is not None:
            state.versions = report.body.versions.model_dump()
        if report.body.disk_free is not None:
            state.disk_free = report.body.disk_free
        prune_results += [
            PruneResult(report.host_id, item, report.body.disk_free, report.received_at)
            for item in report.body.prunes
        ]
        state.last_seen = max(state.last_seen or report.received_at, report.received_at)
        state.status = converged(report.host_id, report.desired, running, app_ids)
        ack = ReportAck(host=state.name, status=state.status, received_at=report.received_at)
        outcomes.append(StoredReport(ack, mentioned))
    _write_rows(session, rows, stored_pairs)
    _write_hosts(session, states)
    store_results(session, prune_results)
    return outcomes


def _write_rows(
    session: Session, rows: dict[tuple[int, int], dict[str, object]], stored: set[tuple[int, int]]
) -> None:
    table = HostApp.metadata.tables[HostApp.__tablename__]
    values: dict[str, BindParameter[Any]] = {
        "active_release_id": bindparam("b_active"),
        "release_id": bindparam("b_release"),
        "step": bindparam("b_step"),
        "health": bindparam("b_health"),
        "outcome": bindparam("b_outcome"),
        "message": bindparam("b_message"),
        "maintenance": bindparam("b_maintenance"),
        "reported_at": bindparam("b_at", type_=UtcDateTime()),
    }
    updates = [params for key, params in rows.items() if key in stored]
    inserts = [params for key, params in rows.items() if key not in stored]
    if updates:
        statement = update(table).where(
            table.c.host_id == bindparam("b_host"), table.c.app_id == bindparam("b_app")
        )
        session.execute(statement.values(values), updates)
    if inserts:
        keys: dict[str, BindParameter[Any]] = {"host_id": bindparam("b_host"), "app_id": bindparam("b_app")}
        session.execute(insert(table).values({**keys, **values}), inserts)


def _write_hosts(session: Session, states: dict[int, _HostState]) -> None:
    table = Host.metadata.tables[Host.__tablename__]
    params = [
        {"b_id": host_id, "b_status": s.status, "b_seen": s.last_seen, "b_version": s.agent_version}
        for host_id, s in sorted(states.items())
        if s.last_seen is not None
    ]
    if params:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        values = {
            "status": bindparam("b_status"),
            "last_seen": bindparam("b_seen", type_=UtcDateTime()),
            "agent_version": bindparam("b_version"),
        }
        session.execute(statement.values(values), params)
    # Versions change at an upgrade or a reboot, not at every report: written only when sent.
    versions = [
        {"b_id": host_id, "b_versions": s.versions}
        for host_id, s in sorted(states.items())
        if s.last_seen is not None and s.versions is not None
    ]
    if versions:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        session.execute(statement.values(versions=bindparam("b_versions", type_=JSON())), versions)
    disk = [
        {"b_id": host_id, "b_disk": s.disk_free}
        for host_id, s in sorted(states.items())
        if s.last_seen is not None and s.disk_free is not None
    ]
    if disk:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        session.execute(statement.values(disk_free=bindparam("b_disk")), disk)


@dataclass(frozen=True)
class _Remembered:
    fingerprint: str
    desired_version: int
    status: str
    stored_at: float


class ReportMemory:
    """The last report stored per host, to answer a repeat of it without a database write.

    A repeat changes nothing the rollout reads; the host's liveness is kept by Presence. A stored
    report is written again after `refresh_after` seconds anyway, so reported_at stays recent and
    another controller process sharing the database cannot leave this one's memory stale for long.
    """

    def __init__(self, refresh_after: float = 120.0) -> None:
        self._refresh_after = refresh_after
        self._lock = threading.Lock()
        self._last: dict[int, _Remembered] = {}

    @staticmethod
    def fingerprint(body: AgentReport) -> str:
        # Counters and free disk change with every report; a report that only repeats the rest needs no
        # database write (free disk is then written with the next stored report, within refresh_after).
        return body.model_dump_json(exclude={"apps": {"__all__": {"counters"}}, "disk_free": True})

    def repeated_status(self, host_id: int, fingerprint: str, desired_version: int) -> str | None:
        """The stored status when this report repeats the last stored one; None when it must be stored."""
        with self._lock:
            last = self._last.get(host_id)
        if last is None or last.fingerprint != fingerprint or last.desired_version != desired_version:
            return None
        return last.status if time.monotonic() - last.stored_at < self._refresh_after else None

    def remember(self, host_id: int, fingerprint: str, desired_version: int, status: str) -> None:
        with self._lock:
            self._last[host_id] = _Remembered(fingerprint, desired_version, status, time.monotonic())

    def forget_host(self, host_id: int) -> None:
        with self._lock:
            self._last.pop(host_id, None)
