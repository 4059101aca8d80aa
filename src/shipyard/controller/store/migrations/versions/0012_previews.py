"""Previews: one row per preview of an app for one pull request, and the preview a job builds.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit on PostgreSQL like every id since 0004; SQLite's INTEGER primary key is already 64-bit.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = "status NOT IN ('closing', 'closed')"


def upgrade() -> None:
    op.create_table(
        "previews",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("app_id", BIG, sa.ForeignKey("apps.id"), nullable=False, index=True),
        sa.Column("repository", sa.String(length=1024), nullable=False),
        sa.Column("pr", BIG, nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("fork", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, index=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("host_name", sa.String(length=255), nullable=False),
        sa.Column("release_id", BIG, nullable=True),
        sa.Column("job_id", BIG, nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("database", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
    )
    # One live preview per app, repository and PR; closed ones stay as history.
    op.create_index(
        "ix_previews_live",
        "previews",
        ["app_id", "repository", "pr"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.add_column("jobs", sa.Column("preview_id", BIG, nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "preview_id")
    op.drop_index("ix_previews_live", table_name="previews")
    op.drop_table("previews")
