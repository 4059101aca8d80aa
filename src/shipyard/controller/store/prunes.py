"""Prunes of every host of an environment: requested here, carried out by each host's agent.

A request is a row whose id is the generation the hosts see in their desired state (DesiredApp.prune,
the latest per app and environment). An agent that sees a newer one prunes the app on its host once,
under the host's app lock (never during a swap), and reports what it removed and its free disk; the
reports land in prune_hosts, one row per prune and host, and the host's free disk in hosts.disk_free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import Host, Prune, PruneHost
from shipyard.domain.prune import human_bytes
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.agent import PruneReport


def request_prune(
    session: Session,
    *,
    app: str,
    environment: str,
    actor: str,
    source_ip: str | None,
    now: datetime,
    schedule_id: int | None = None,
) -> Prune:
    """Ask every host of `environment` to prune `app`; ConflictError when the app never went there."""
    app_row, environment_row = catalog.deployed_place(
        session, app, environment, "no host there has releases to prune"
    )
    prune = Prune(
        app_id=app_row.id,
        environment_id=environment_row.id,
        schedule_id=schedule_id,
        requested_by=actor,
        requested_at=now,
    )
    session.add(prune)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="prune.request",
        target=f"{app}/{environment}",
        source_ip=source_ip,
        prune=prune.id,
    )
    return prune


def find_prune(session: Session, prune_id: int) -> Prune:
    query = (
        select(Prune)
        .where(Prune.id == prune_id)
        .options(
            joinedload(Prune.app),
            joinedload(Prune.environment),
            selectinload(Prune.hosts).joinedload(PruneHost.host),
        )
    )
    prune = session.scalar(query)
    if prune is None:
        raise NotFoundError(f"prune {prune_id} does not exist; list them with 'shipyard prunes'.")
    return prune


def list_prunes(
    session: Session,
    *,
    app: str | None = None,
    environment: str | None = None,
    schedule_id: int | None = None,
    limit: int = 20,
) -> Sequence[Prune]:
    query = select(Prune).options(
        joinedload(Prune.app),
        joinedload(Prune.environment),
        selectinload(Prune.hosts).joinedload(PruneHost.host),
    )
    if app is not None:
        query = query.where(Prune.app_id == catalog.find_app(session, app).id)
    if environment is not None:
        query = query.where(Prune.environment_id == catalog.find_environment(session, environment).id)
    if schedule_id is not None:
        query = query.where(Prune.schedule_id == schedule_id)
    return session.scalars(query.order_by(Prune.id.desc()).limit(limit)).all()


def waiting_hosts(session: Session, prune: Prune) -> list[str]:
    """Hosts of the prune's environment that have not reported it yet."""
    reported = {row.host_id for row in prune.hosts}
    names = session.execute(
        select(Host.id, Host.name).where(Host.group == prune.environment.name).order_by(Host.name)
    ).all()
    return [name for host_id, name in names if host_id not in reported]


@dataclass(frozen=True)
class PruneResult:
    host_id: int
    report: PruneReport
    disk_free: int | None
    received_at: datetime


def store_results(session: Session, results: Sequence[PruneResult]) -> None:
    """Keep each host's latest word on each prune; a report naming an unknown prune or app is dropped."""
    if not results:
        return
    wanted = sorted({result.report.prune for result in results})
    rows = session.execute(select(Prune.id, Prune.app_id).where(Prune.id.in_(wanted)))
    known = {prune_id: app_id for prune_id, app_id in rows}
    app_ids = {app.name: app.id for app in catalog.list_apps(session)}
    for result in results:
        report = result.report
        if known.get(report.prune) is None or known[report.prune] != app_ids.get(report.app):
            continue
        session.merge(
            PruneHost(
                prune_id=report.prune,
                host_id=result.host_id,
                outcome=report.outcome,
                removed=list(report.removed),
                disk_free=result.disk_free,
                message=report.message,
                reported_at=result.received_at,
            )
        )


def summary(prune: Prune, waiting: Sequence[str]) -> str:
    """One line per prune: per host what was removed and the free disk, then who has not reported."""
    parts = []
    for row in prune.hosts:
        if row.outcome == "succeeded":
            what = f"removed {len(row.removed)}" if row.removed else "nothing to remove"
        else:
            what = f"failed: {row.message}"
        free = f", {human_bytes(row.disk_free)} free" if row.disk_free is not None else ""
        parts.append(f"{row.host.name} {what}{free}")
    if waiting:
        parts.append("waiting for " + ", ".join(waiting))
    return f"prune {prune.id}: " + ("; ".join(parts) if parts else "no host in the environment")
