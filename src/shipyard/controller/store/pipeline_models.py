"""Tables of the pipeline: registered hooks, every delivery received, jobs and their log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shipyard.controller.store.models import App, Base, utcnow

PREVIEW_LIVE = "status NOT IN ('closing', 'closed')"


class Hook(Base):
    """One app's webhook: the secret(s) that sign its deliveries and the branches it ships."""

    __tablename__ = "hooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), unique=True)
    repository: Mapped[str] = mapped_column(String(1024))
    # HMAC needs the secret itself, so it is kept (never returned, never logged); `previous_secret` is
    # still accepted while a rotation is under way.
    secret: Mapped[str] = mapped_column(String(512))
    previous_secret: Mapped[str | None] = mapped_column(String(512), default=None)
    # Name of the fetch key for ssh URLs in the controller's secret store (env "controller").
    deploy_key_secret: Mapped[str | None] = mapped_column(String(128), default=None)
    # [{branch, environment}]: from shipyard.yml at registration, refreshed by every job's commit.
    pipelines: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    app: Mapped[App] = relationship()


class Delivery(Base):
    """A webhook request as received: stored before it is answered, whatever the verdict."""

    __tablename__ = "hook_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    app: Mapped[str] = mapped_column(String(64), index=True)
    delivery_id: Mapped[str] = mapped_column(String(128), index=True)
    event: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))  # accepted | ignored | duplicate | rejected | ping
    reason: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    source_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Job(Base):
    """fetch -> build + push -> release -> deployment for one commit of one app to one environment."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    environment: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str] = mapped_column(String(255))
    sha: Mapped[str] = mapped_column(String(64))
    repository: Mapped[str] = mapped_column(String(1024))
    trigger: Mapped[str] = mapped_column(String(64))  # push | pull_request | retry of <id>
    delivery_id: Mapped[str | None] = mapped_column(String(128), default=None)
    # Orders commits of one branch: the commit's time, then the arrival order (id).
    commit_time: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    step: Mapped[str] = mapped_column(String(32), default="")
    attempt: Mapped[int] = mapped_column(default=1)
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), default=None)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    release_id: Mapped[int | None] = mapped_column(Integer, default=None)
    deployment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # Set on a preview's build (store/previews.py): the job then builds and deploys that preview.
    preview_id: Mapped[int | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    app: Mapped[App] = relationship()


class JobLogLine(Base):
    """One line of a job's output, already redacted; the id is the SSE event id."""

    __tablename__ = "job_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    line: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Schedule(Base):
    """A job started by the clock: a cron expression read in a time zone, and what to run."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # deploy | rebuild
    environment: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(String(64), default=None)  # deploy: the commit sha
    overlap: Mapped[str] = mapped_column(String(8))  # skip | queue
    missed: Mapped[str] = mapped_column(
        String(8)
    )  # run-once | skip: runs missed while the controller was down
    next_run_at: Mapped[datetime] = mapped_column(index=True)  # UTC
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_job_id: Mapped[int | None] = mapped_column(Integer, default=None)
    last_result: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    app: Mapped[App] = relationship()


class NotifyTarget(Base):
    """Where job and deployment events are posted: Slack-compatible or plain JSON, all apps or one."""

    __tablename__ = "notify_targets"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The URL may carry a token (Slack's incoming webhooks do): kept, never returned whole.
    url: Mapped[str] = mapped_column(String(2048))
    format: Mapped[str] = mapped_column(String(8))  # slack | json
    app: Mapped[str | None] = mapped_column(String(64), default=None)  # None: every app
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One event to post to one target (an outbox): sent by the notifier, retried with backoff."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("notify_targets.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class Preview(Base):
    """A preview of an app for one pull request, keyed by repository and PR number (never a branch)."""

    __tablename__ = "previews"
    __table_args__ = (
        Index(
            "ix_previews_live",
            "app_id",
            "repository",
            "pr",
            unique=True,
            sqlite_where=text(PREVIEW_LIVE),
            postgresql_where=text(PREVIEW_LIVE),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), index=True)
    repository: Mapped[str] = mapped_column(String(1024))
    pr: Mapped[int] = mapped_column()
    sha: Mapped[str] = mapped_column(String(64))
    fork: Mapped[bool] = mapped_column(default=False)
    # queued | building | deploying | ready | failed | closing | closed (engine/previews.py)
    status: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    host_name: Mapped[str] = mapped_column(String(255))
    release_id: Mapped[int | None] = mapped_column(default=None)
    job_id: Mapped[int | None] = mapped_column(default=None)
    pinned: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime] = mapped_column()
    # Whether a database was handed to it (and is still to be dropped at teardown).
    database: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    app: Mapped[App] = relationship()
