"""Hosts: registration with a join token, agent reports, and marking silent hosts lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from shipyard.controller.errors import ConflictError, UnauthorizedError
from shipyard.controller.store import audit, catalog
from shipyard.controller.store.models import Host, UtcDateTime
from shipyard.controller.store.tokens import AGENT_PREFIX, consume_join_token, hash_token, new_token
from shipyard.errors import NotFoundError
from shipyard.fleet_api.schemas.agent import AgentRegister

READY, CONVERGING, LOST = "ready", "converging", "lost"


def register_host(
    session: Session, join_token: str, body: AgentRegister, *, now: datetime, source_ip: str | None
) -> tuple[Host, str]:
    """Spend the join token and create the host; returns the host and its new agent token."""
    join = consume_join_token(session, join_token, host_name=body.name, now=now)
    if session.scalar(select(Host.id).where(Host.name == body.name)) is not None:
        raise ConflictError(
            f"a host named {body.name!r} is already registered; remove it first or pick a new name."
        )
    catalog.ensure_environment(session, join.group)
    agent_token = new_token(AGENT_PREFIX)
    host = Host(
        name=body.name,
        address=body.address,
        labels=dict(body.labels),
        group=join.group,
        status=CONVERGING,  # until its first report says it runs what it should
        last_seen=now,
        agent_version=body.agent_version,
        versions=body.versions.model_dump() if body.versions else {},
        token_hash=hash_token(agent_token),
        registered_at=now,
    )
    session.add(host)
    session.flush()
    audit.record(
        session, actor=f"host:{body.name}", action="host.register", target=body.name, source_ip=source_ip
    )
    return host, agent_token


def find_agent_host(session: Session, token: str) -> Host:
    host = session.scalar(select(Host).where(Host.token_hash == hash_token(token)))
    if host is None:
        raise UnauthorizedError("the agent token is unknown; register the host again with a new join token.")
    return host


def find_host(session: Session, name: str) -> Host:
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise NotFoundError(f"host {name!r} is not registered.")
    return host


def list_hosts(session: Session, group: str | None = None) -> Sequence[Host]:
    query = select(Host).order_by(Host.name)
    if group is not None:
        query = query.where(Host.group == group)
    return session.scalars(query).all()


def store_last_seen(session: Session, seen: Mapping[int, datetime]) -> None:
    """Store a batch of in-memory last_seen times: one executemany UPDATE, never moving a time back.

    A host marked lost that was seen again comes back as converging.
    """
    if not seen:
        return
    table = Host.metadata.tables[Host.__tablename__]
    at = bindparam("seen_at", type_=UtcDateTime())
    params = [{"host": host_id, "seen_at": when} for host_id, when in sorted(seen.items())]
    session.execute(
        update(table).where(table.c.id == bindparam("host"), table.c.last_seen < at).values(last_seen=at),
        params,
    )
    session.execute(
        update(table).where(table.c.id.in_(list(seen)), table.c.status == LOST).values(status=CONVERGING)
    )


def mark_lost(
    session: Session, *, now: datetime, lost_after: float, seen: Mapping[int, datetime] | None = None
) -> list[Host]:
    """Hosts silent for `lost_after`; `seen` holds in-memory last_seen times not stored yet."""
    cutoff = now - timedelta(seconds=lost_after)
    recent = seen or {}
    candidates = session.scalars(select(Host).where(Host.status != LOST, Host.last_seen < cutoff)).all()
    silent = [host for host in candidates if not (host.id in recent and recent[host.id] >= cutoff)]
    for host in silent:
        host.status = LOST
        audit.record(session, actor=audit.CONTROLLER_ACTOR, action="host.lost", target=host.name)
    return list(silent)
