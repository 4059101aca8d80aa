"""The pipeline: hooks, their deliveries, jobs and job logs.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("app_id", sa.Integer(), sa.ForeignKey("apps.id"), nullable=False, unique=True),
        sa.Column("repository", sa.String(length=1024), nullable=False),
        sa.Column("secret", sa.String(length=512), nullable=False),
        sa.Column("previous_secret", sa.String(length=512), nullable=True),
        sa.Column("deploy_key_secret", sa.String(length=128), nullable=True),
        sa.Column("pipelines", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("app", sa.String(length=64), nullable=False, index=True),
        sa.Column("delivery_id", sa.String(length=128), nullable=False, index=True),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False, index=True),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("app_id", sa.Integer(), sa.ForeignKey("apps.id"), nullable=False, index=True),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=1024), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.String(length=128), nullable=True),
        sa.Column("commit_time", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), sa.ForeignKey("jobs.id"), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "job_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("job_log", "jobs", "hook_deliveries", "hooks"):
        op.drop_table(table)
