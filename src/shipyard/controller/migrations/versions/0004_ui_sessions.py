"""Dashboard sign-in sessions, kept server-side: the cookie holds a random id, never a token; and an
index for the dashboard's "live and previous release" of an app in an environment.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column(
            "token_id", sa.Integer(), sa.ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False, index=True),
    )

    op.create_index(
        "ix_deployments_place_status_finished",
        "deployments",
        ["app_id", "environment_id", "status", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_deployments_place_status_finished", table_name="deployments")
    op.drop_table("ui_sessions")
