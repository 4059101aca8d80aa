"""The rollout tick reads and writes per-host rows as plain values: the same state the ORM sees."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_fixtures import DIGESTS, spec
from sqlalchemy import Engine, event

from shipyard.controller.engine.rollout import HEALTHY, PENDING, WAITING
from shipyard.controller.server.driver import RolloutDriver
from shipyard.controller.store import catalog, deployments, hosts, releases
from shipyard.controller.store.db import Database
from shipyard.controller.store.models import Deployment, Host
from shipyard.controller.store.reports import PendingReport, store_reports
from shipyard.controller.store.rollout_store import progress_rows, state_of
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredState
from shipyard.fleet_api.schemas.releases import ReleaseCreate

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@contextmanager
def host_row_writes(engine: Engine) -> Iterator[list[tuple[str, int]]]:
    """(verb, parameter sets) of every write to deployment_hosts while the block runs."""
    seen: list[tuple[str, int]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        words = statement.split()
        verb = words[0].upper()
        table = words[2] if verb == "INSERT" else words[1]
        if verb in {"INSERT", "UPDATE"} and table.strip('"') == "deployment_hosts":
            seen.append((verb, len(params) if many else 1))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def orm_and_plain(db: Database, deployment_id: int) -> tuple[Any, Any]:
    """The deployment's state read through the ORM relationship and through plain rows."""
    with db.read() as session:
        deployment = session.get_one(Deployment, deployment_id)
        return state_of(deployment), state_of(deployment, progress_rows(session, deployment_id))


def test_a_tick_writes_only_the_host_rows_that_changed(controller_db_url: str) -> None:
    db = Database(controller_db_url)
    db.migrate()
    clock = [T0]
    driver = RolloutDriver(db, lost_after=600, clock=lambda: clock[0], on_change=lambda: None)
    try:
        with db.transaction() as session:
            catalog.ensure_environment(session, "production")
            host_ids = []
            for n in range(6):
                host = Host(name=f"tick{n}", group="production", status=hosts.READY, last_seen=T0)
                host.token_hash = f"tick-token-{n}"
                session.add(host)
                session.flush()
                host_ids.append(host.id)
            body = ReleaseCreate(
                image="registry:5000/web", digest=DIGESTS[0], spec=spec(max_parallel="50%", monitor=5)
            )
            release_id = releases.create_release(session, body, actor="test", source_ip=None).id
            deployment_id = deployments.create_deployment(
                session,
                release_id=release_id,
                environment="production",
                queue=False,
                actor="test",
                source_ip=None,
                now=T0,
            ).id

        with host_row_writes(db.engine) as writes:
            assert driver.tick()
        assert writes == [("INSERT", 6)], "the first wave's rows are one executemany"
        orm, plain = orm_and_plain(db, deployment_id)
        assert orm == plain
        assert [(row.wave, row.outcome) for row in plain.progress] == [(1, PENDING)] * 3 + [(2, WAITING)] * 3

        # Two hosts of wave 1 report the release healthy: only their two rows are written.
        clock[0] = T0 + timedelta(seconds=1)
        item = {"app": "web", "active_release": release_id, "release": release_id, "health": "healthy"}
        report = AgentReport.model_validate({"apps": [item]})
        anyone = DesiredState(host="tick0", group="production", version=1, apps=[])
        with db.transaction() as session:
            store_reports(session, [PendingReport(h, report, anyone, clock[0]) for h in host_ids[:2]])
        with host_row_writes(db.engine) as writes:
            assert driver.tick()
        assert writes == [("UPDATE", 2)]
        orm, plain = orm_and_plain(db, deployment_id)
        assert orm == plain
        outcomes = [(row.host_id, row.outcome, row.healthy_since) for row in plain.progress]
        assert outcomes[:3] == [
            (host_ids[0], HEALTHY, clock[0]),
            (host_ids[1], HEALTHY, clock[0]),
            (host_ids[2], PENDING, None),
        ]

        # Nothing new: nothing written.
        clock[0] = T0 + timedelta(seconds=2)
        with host_row_writes(db.engine) as writes:
            assert not driver.tick()
        assert writes == []
    finally:
        db.dispose()
