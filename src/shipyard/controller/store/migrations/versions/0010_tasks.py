"""Tasks: one-off commands and release phases run once in a throwaway container, with their output.

Revision ID: 0010
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit on PostgreSQL like every id since 0004; SQLite's INTEGER primary key is already 64-bit.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False, index=True),
        sa.Column("environment_id", BIG, sa.ForeignKey("environments.id"), nullable=False, index=True),
        sa.Column("host_id", BIG, sa.ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("release_id", BIG, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("deployment_id", BIG, sa.ForeignKey("deployments.id"), nullable=True, index=True),
        sa.Column("argv", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "task_lines",
        sa.Column(
            "task_id", BIG, sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True, nullable=False
        ),
        sa.Column("number", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_lines")
    op.drop_table("tasks")
