"""Database rows turned into the API's response bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from shipyard.controller.engine.rollout import HOST_FAILED
from shipyard.controller.store.models import ApiToken, AuditEntry, Deployment, Host, Lock, Release
from shipyard.domain.versions import version_skew
from shipyard.fleet_api.schemas.admin import AuditOut, LockOut, TokenOut
from shipyard.fleet_api.schemas.common import release_name
from shipyard.fleet_api.schemas.deployments import DeploymentOut, HostProgressOut
from shipyard.fleet_api.schemas.fleet import HostAppOut, HostOut
from shipyard.fleet_api.schemas.releases import ReleaseOut


def release_out(release: Release) -> ReleaseOut:
    return ReleaseOut(
        id=release.id,
        name=release_name(release.id),
        app=release.app.name,
        image=release.image,
        digest=release.digest,
        spec=release.spec,
        created_by=release.created_by,
        created_at=release.created_at,
        signature=release.signature,
        git_sha=release.git_sha,
    )


# What a host's progress row carries besides the host's name, from a view row or a DeploymentHost alike.
PROGRESS_FIELDS = ("wave", "outcome", "step", "message", "started_at", "healthy_since", "finished_at")


def deployment_out(
    deployment: Deployment, *, with_hosts: bool = True, rows: Sequence[Row[*tuple[Any, ...]]] | None = None
) -> DeploymentOut:
    """The deployment's view; its hosts from `rows` (deployments.find_deployment_view) when given,
    else from Deployment.hosts."""
    # Columns of the schema's own types straight from the database: no validation per host row.
    named: list[tuple[str, Any]] = (
        [(row.name, row) for row in rows]
        if rows is not None
        else [(row.host.name, row) for row in deployment.hosts]
    )
    progress = [
        HostProgressOut.model_construct(
            host=name, **{field: getattr(row, field) for field in PROGRESS_FIELDS}
        )
        for name, row in sorted(named, key=lambda pair: (pair[1].wave, pair[0]))
    ]
    return DeploymentOut(
        id=deployment.id,
        app=deployment.app.name,
        environment=deployment.environment.name,
        release_id=deployment.release_id,
        release=release_name(deployment.release_id),
        image=deployment.release.image,
        digest=deployment.release.digest,
        status=deployment.status,
        current_wave=deployment.current_wave,
        total_waves=deployment.total_waves,
        max_parallel=deployment.max_parallel,
        max_failed=deployment.max_failed,
        monitor=deployment.monitor,
        auto_rollback=deployment.auto_rollback,
        failed_hosts=sum(row.outcome == HOST_FAILED for row in progress),
        rollback_of=deployment.rollback_of,
        previous_release_id=deployment.previous_release_id,
        message=deployment.message,
        created_by=deployment.created_by,
        created_at=deployment.created_at,
        started_at=deployment.started_at,
        finished_at=deployment.finished_at,
        hosts=progress if with_hosts else [],
    )


def host_out(host: Host, skew: list[str] | None = None) -> HostOut:
    apps = [
        HostAppOut(
            app=row.app.name,
            active_release=row.active_release_id,
            step=row.step,
            health=row.health,
            outcome=row.outcome,
            message=row.message,
            reported_at=row.reported_at,
            maintenance=row.maintenance,
        )
        for row in host.apps
    ]
    return HostOut(
        name=host.name,
        address=host.address,
        labels=host.labels,
        group=host.group,
        status=host.status,
        last_seen=host.last_seen,
        agent_version=host.agent_version,
        registered_at=host.registered_at,
        apps=sorted(apps, key=lambda app: app.app),
        versions={key: str(value) for key, value in (host.versions or {}).items()},
        skew=skew or [],
        disk_free=host.disk_free,
    )


def hosts_out(found: Sequence[Host], peers: Sequence[Host] | None = None) -> list[HostOut]:
    """`found` with each host's version skew against the hosts of its group (`peers`, default `found`)."""
    by_group: dict[str, dict[str, dict[str, str]]] = {}
    for host in peers if peers is not None else found:
        by_group.setdefault(host.group, {})[host.name] = {k: str(v) for k, v in (host.versions or {}).items()}
    skew = {group: version_skew(members) for group, members in by_group.items()}
    return [host_out(host, skew.get(host.group, {}).get(host.name)) for host in found]


def lock_out(lock: Lock) -> LockOut:
    return LockOut(
        app=lock.app.name,
        environment=lock.environment.name,
        holder=lock.holder,
        reason=lock.reason,
        since=lock.since,
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        source_ip=entry.source_ip,
        detail=entry.detail,
    )


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        role=token.role,
        created_by=token.created_by,
        created_at=token.created_at,
        revoked=token.revoked_at is not None,
        apps=token.apps,
    )
