"""Apps in maintenance per environment, whether each host answers an app's maintenance page, log requests.

Revision ID: 0011
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit on PostgreSQL like every id since 0004; SQLite's INTEGER primary key is already 64-bit.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "host_apps", sa.Column("maintenance", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("environment_id", BIG, sa.ForeignKey("environments.id"), nullable=False, index=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_by", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("app_id", "environment_id"),
    )
    op.create_table(
        "log_requests",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("environment_id", BIG, sa.ForeignKey("environments.id"), nullable=False, index=True),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False, index=True),
    )
    op.create_table(
        "log_hosts",
        sa.Column(
            "request_id",
            BIG,
            sa.ForeignKey("log_requests.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        ),
        sa.Column(
            "host_id", BIG, sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True, nullable=False
        ),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_table(
        "log_lines",
        sa.Column("id", BIG, primary_key=True),
        sa.Column(
            "request_id",
            BIG,
            sa.ForeignKey("log_requests.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("host_id", BIG, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("log_lines")
    op.drop_table("log_hosts")
    op.drop_table("log_requests")
    op.drop_table("maintenance_windows")
    op.drop_column("host_apps", "maintenance")
