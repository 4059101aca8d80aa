"""The controller's tables, as typed SQLAlchemy 2 mappings.

Releases are immutable once written; deployments and their per-host progress rows hold every bit of
rollout state, so a restarted controller continues exactly where the previous one stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always handed back timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# 64-bit integers on PostgreSQL, so any id the API accepts can be looked up or stored; SQLite's INTEGER
# already holds 64 bits (and only INTEGER PRIMARY KEY numbers rows by itself).
BigInt = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: BigInt,
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        dict[str, str]: JSON,
    }


class App(Base):
    __tablename__ = "apps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Host(Base):
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    address: Mapped[str] = mapped_column(String(255), default="")
    labels: Mapped[dict[str, str]] = mapped_column(default=dict)
    group: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    # Docker Engine, haproxy, kernel and shipyard versions as the agent last reported them.
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Bytes free on the filesystem of the engine's data root, as the agent last measured it.
    disk_free: Mapped[int | None] = mapped_column(default=None)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    apps: Mapped[list[HostApp]] = relationship(back_populates="host", cascade="all, delete-orphan")


class HostApp(Base):
    """What the host's agent last reported about one app."""

    __tablename__ = "host_apps"
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    active_release_id: Mapped[int | None] = mapped_column()
    release_id: Mapped[int | None] = mapped_column()  # the release the step/outcome refers to
    step: Mapped[str] = mapped_column(String(64), default="")
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    outcome: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    maintenance: Mapped[bool] = mapped_column(default=False)  # haproxy answers the maintenance page
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    host: Mapped[Host] = relationship(back_populates="apps")
    app: Mapped[App] = relationship()


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    image: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(80))
    spec: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # ed25519:<key id>:<base64>, over shipyard.signing.release_payload; None when nobody signed it.
    signature: Mapped[str | None] = mapped_column(String(160), default=None)
    # The commit the image was built from, when the creator said (CI's --git-sha, a pipeline job).
    git_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    app: Mapped[App] = relationship()


class ReleaseSecrets(Base):
    """A release's secret values sealed for one environment: ciphertext the controller cannot open."""

    __tablename__ = "release_secrets"
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(255))  # which key opens it, shown to nobody but the audit
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    current_wave: Mapped[int] = mapped_column(default=0)
    total_waves: Mapped[int] = mapped_column(default=0)
    max_parallel: Mapped[str] = mapped_column(String(8))
    max_failed: Mapped[int] = mapped_column()
    monitor: Mapped[float] = mapped_column()
    auto_rollback: Mapped[bool] = mapped_column()
    rollback_of: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    release: Mapped[Release] = relationship(foreign_keys=[release_id])
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()
    hosts: Mapped[list[DeploymentHost]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan", order_by="DeploymentHost.id"
    )


class DeploymentHost(Base):
    """One host's progress within one deployment."""

    __tablename__ = "deployment_hosts"
    __table_args__ = (UniqueConstraint("deployment_id", "host_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    wave: Mapped[int] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16), default="waiting")
    step: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column()
    healthy_since: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    deployment: Mapped[Deployment] = relationship(back_populates="hosts")
    host: Mapped[Host] = relationship()


class Lock(Base):
    __tablename__ = "locks"
    __table_args__ = (UniqueConstraint("app_id", "environment_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    holder: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    # The apps a `ci` token may ship; None for the other roles.
    apps: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class JoinToken(Base):
    __tablename__ = "join_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    group: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    used_by: Mapped[str | None] = mapped_column(String(128))


class Prune(Base):
    """A request that every host of an environment prune one app; its id is the generation agents see."""

    __tablename__ = "prunes"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    schedule_id: Mapped[int | None] = mapped_column(index=True)  # the schedule that asked, if any
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()
    hosts: Mapped[list[PruneHost]] = relationship(
        back_populates="prune", cascade="all, delete-orphan", order_by="PruneHost.host_id"
    )


class PruneHost(Base):
    """What one host's agent removed for one prune, and its free disk afterwards."""

    __tablename__ = "prune_hosts"
    prune_id: Mapped[int] = mapped_column(ForeignKey("prunes.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    removed: Mapped[list[str]] = mapped_column(JSON, default=list)
    disk_free: Mapped[int | None] = mapped_column(default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    prune: Mapped[Prune] = relationship(back_populates="hosts")
    host: Mapped[Host] = relationship()


class Task(Base):
    """A command run once in a throwaway container of a release on one host: `shipyard run` or the
    release phase of a deployment (kind "release", with its deployment)."""

    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"), index=True)
    argv: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()
    host: Mapped[Host | None] = relationship()
    release: Mapped[Release] = relationship()


class TaskLine(Base):
    """One output line of a task, masked for secrets by the agent before it was sent."""

    __tablename__ = "task_lines"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class MaintenanceWindow(Base):
    """An app in maintenance in an environment: its hosts answer the maintenance page, containers run."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (UniqueConstraint("app_id", "environment_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()


class LogRequest(Base):
    """A request for an app's log lines from every host of an environment, open until `expires_at`."""

    __tablename__ = "log_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    query: Mapped[dict[str, Any]] = mapped_column()  # grep, since, process, tail, follow
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    app: Mapped[App] = relationship()
    environment: Mapped[Environment] = relationship()


class LogHost(Base):
    """A host's progress on a log request: whether it sent all it will, and its word when it sent none."""

    __tablename__ = "log_hosts"
    request_id: Mapped[int] = mapped_column(
        ForeignKey("log_requests.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    finished: Mapped[bool] = mapped_column(default=False)
    message: Mapped[str] = mapped_column(Text, default="")


class LogLine(Base):
    __tablename__ = "log_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("log_requests.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    line: Mapped[str] = mapped_column(Text)
