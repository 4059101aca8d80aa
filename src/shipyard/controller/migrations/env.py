"""Alembic environment: migrates the engine handed over by shipyard.controller.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from shipyard.controller.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through shipyard.controller.migrate, which passes the engine")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
