"""Schedules, notification targets and their outbox, ci tokens' app scopes, a release's git sha.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit on PostgreSQL like every id since 0004; SQLite's INTEGER primary key is already 64-bit.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("apps", sa.JSON(), nullable=True))
    op.add_column("releases", sa.Column("git_sha", sa.String(length=64), nullable=True))
    op.create_table(
        "schedules",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False, index=True),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=True),
        sa.Column("overlap", sa.String(length=8), nullable=False),
        sa.Column("missed", sa.String(length=8), nullable=False),
        sa.Column("next_run_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_job_id", BIG, nullable=True),
        sa.Column("last_result", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "notify_targets",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("app", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", BIG, primary_key=True),
        sa.Column(
            "target_id",
            BIG,
            sa.ForeignKey("notify_targets.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("attempts", BIG, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notify_targets")
    op.drop_table("schedules")
    op.drop_column("releases", "git_sha")
    op.drop_column("api_tokens", "apps")
