"""Integer columns (ids, references, counters) are 64-bit on PostgreSQL, like every id the API accepts.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _integer_columns() -> list[tuple[str, str]]:
    inspector = sa.inspect(op.get_bind())
    return [
        (table, column["name"])
        for table in inspector.get_table_names()
        if table != "alembic_version"
        for column in inspector.get_columns(table)
        if type(column["type"]) is sa.INTEGER
    ]


def upgrade() -> None:
    """Widen every INTEGER column to BIGINT; SQLite's INTEGER already holds 64 bits."""
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in _integer_columns():
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    """Nothing to undo: 32-bit columns could not hold every id already accepted."""
