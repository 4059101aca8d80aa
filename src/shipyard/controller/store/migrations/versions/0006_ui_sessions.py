"""Dashboard sign-in sessions, kept server-side: the cookie holds a random id, never a token; and an
index for the dashboard's "live and previous release" of an app in an environment.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column(
            "token_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("api_tokens.id", ondelete="CASCADE"),
            nullable=False,
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
