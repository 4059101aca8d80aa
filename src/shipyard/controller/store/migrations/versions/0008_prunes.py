"""Prunes of every host of an environment (requests and per-host results), a host's free disk.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit on PostgreSQL like every id since 0004; SQLite's INTEGER primary key is already 64-bit.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("hosts", sa.Column("disk_free", BIG, nullable=True))
    op.create_table(
        "prunes",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False, index=True),
        sa.Column("environment_id", BIG, sa.ForeignKey("environments.id"), nullable=False, index=True),
        sa.Column("schedule_id", BIG, nullable=True, index=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "prune_hosts",
        sa.Column(
            "prune_id", BIG, sa.ForeignKey("prunes.id", ondelete="CASCADE"), primary_key=True, nullable=False
        ),
        sa.Column(
            "host_id", BIG, sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True, nullable=False
        ),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("disk_free", BIG, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prune_hosts")
    op.drop_table("prunes")
    op.drop_column("hosts", "disk_free")
