"""Alembic environment: migrates the engine handed over by shipyard.controller.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, text

from shipyard.controller.store.leadership import MIGRATION_LOCK_KEY
from shipyard.controller.store.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through shipyard.controller.store.migrate, which passes the engine")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together upgrade one after the other; the later ones then find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()
