"""Agent reports stored in set-based batches, repeats answered from memory, views in few queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_fixtures import DIGESTS, controller_settings, running_controller, spec
from sqlalchemy import Engine, event, select

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import catalog, hosts
from shipyard.controller.store.db import Database
from shipyard.controller.store.models import Host, HostApp
from shipyard.controller.store.reports import PendingReport, StoredReport, store_reports
from shipyard.errors import ShipyardError
from shipyard.fleet_api.schemas.agent import AgentReport, DesiredApp, DesiredState

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@contextmanager
def counted_statements(engine: Engine) -> Iterator[list[tuple[str, bool]]]:
    """Every statement sent to the database while the block runs, with whether it was an executemany."""
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement.split()[0].upper(), many))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def report(app: str, active: int | None, health: str = "healthy", version: str = "") -> AgentReport:
    item = {"app": app, "active_release": active, "release": active, "health": health, "step": "done"}
    return AgentReport.model_validate({"agent_version": version or None, "apps": [item]})


def desired(host: str, release_id: int | None) -> DesiredState:
    apps = []
    if release_id is not None:
        apps.append(
            DesiredApp(
                app="web",
                release_id=release_id,
                release=f"r{release_id}",
                image="registry:5000/web",
                digest=DIGESTS[0],
                spec={},
                deployment_id=None,
            )
        )
    return DesiredState(host=host, group="production", version=1, apps=apps)


def test_a_burst_of_reports_is_a_few_statements_and_a_removed_host_is_refused_alone(
    controller_db_url: str,
) -> None:
    db = Database(controller_db_url)
    db.migrate()
    try:
        with db.transaction() as session:
            catalog.ensure_environment(session, "production")
            catalog.ensure_app(session, "web")
            added = []
            for n in range(40):
                host = Host(name=f"burst{n}", group="production", status=hosts.CONVERGING, last_seen=T0)
                host.token_hash = f"burst-token-{n}"
                session.add(host)
                session.flush()
                added.append(host.id)
        later = T0 + timedelta(seconds=30)
        batch = [
            PendingReport(host_id, report("web", 7), desired(f"burst{n}", 7), later)
            for n, host_id in enumerate(added)
        ]
        batch.append(PendingReport(10**9, report("web", 7), desired("gone", 7), later))  # removed meanwhile
        batch.append(PendingReport(added[0], report("web", 6, version="2.0"), desired("burst0", 7), later))
        with counted_statements(db.engine) as statements, db.transaction() as session:
            outcomes = store_reports(session, batch)
        writes = [(verb, many) for verb, many in statements if verb in {"INSERT", "UPDATE"}]
        assert writes == [("INSERT", True), ("UPDATE", True)], "one executemany per statement shape"
        assert len(statements) <= 8, statements
        refused = outcomes[40]
        assert isinstance(refused, ShipyardError) and "removed" in str(refused)
        stored = [o for o in outcomes if isinstance(o, StoredReport)]
        assert len(stored) == 41
        assert {o.ack.status for o in stored[1:40]} == {hosts.READY}
        assert stored[40].ack.status == hosts.CONVERGING  # burst0's later report: release 6, not 7
        with db.read() as session:
            rows = {r.host_id: r for r in session.scalars(select(HostApp))}
            first = session.get_one(Host, added[0])
            assert (rows[added[0]].active_release_id, first.status, first.agent_version) == (
                6,
                hosts.CONVERGING,
                "2.0",
            )
            assert first.last_seen == later
            assert rows[added[1]].active_release_id == 7 and rows[added[1]].reported_at == later
        # The same hosts again: now updates of existing rows, still one executemany each.
        with counted_statements(db.engine) as statements, db.transaction() as session:
            store_reports(session, batch[:40])
        writes = [(verb, many) for verb, many in statements if verb in {"INSERT", "UPDATE"}]
        assert writes == [("UPDATE", True), ("UPDATE", True)]
    finally:
        db.dispose()


def test_a_repeated_report_is_answered_without_a_write(controller_db_url: str) -> None:
    with running_controller(controller_settings(controller_db_url)) as harness:
        context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
        agent = harness.add_agent("h1")
        target = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec(monitor=0.1)).id
        deployment = harness.admin.create_deployment(target, "production")
        assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
        agent.sync()
        writes = context.reports.transactions
        for _ in range(5):
            agent.sync()
        assert context.reports.transactions == writes, "an unchanged report is not written again"
        assert [host.status for host in harness.admin.hosts()] == ["ready"]
        agent.broken_releases.add(target)  # now it says something new: stored at once
        agent.sync()
        assert context.reports.transactions == writes + 1
        assert [a.health for a in harness.admin.hosts()[0].apps] == ["unhealthy"]


def test_a_deployment_view_reads_a_fixed_number_of_queries_whatever_the_hosts(
    controller_db_url: str,
) -> None:
    # No timer ticks, job worker or notification rounds during the count: only the view's own queries
    # are seen, however long a loaded machine takes to answer.
    settings = controller_settings(
        controller_db_url, tick_interval=30.0, run_jobs=False, notify_interval=3600.0
    )
    with running_controller(settings) as harness:
        context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
        for n in range(12):
            harness.add_agent(f"v{n:02d}")
        target = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec(max_parallel="100%")).id
        deployment = harness.admin.create_deployment(target, "production")
        with counted_statements(context.db.engine) as statements:
            view = harness.admin.get_deployment(deployment.id)
        assert len(view.hosts) == 12
        reads = [verb for verb, _ in statements if verb == "SELECT"]
        assert len(reads) <= 6, f"{len(reads)} SELECTs for 12 hosts: one per host crept back in"


def test_the_agent_hot_path_answers_like_the_routes_and_leaves_bad_input_to_them(
    controller_harness: Any,
) -> None:
    agent = controller_harness.add_agent("h1")
    http, headers = controller_harness.http, {"Authorization": f"Bearer {agent.token}"}
    first = http.get("/api/v1/agent/desired", headers=headers)  # token checked in the database
    again = http.get("/api/v1/agent/desired", params={"wait": 0}, headers=headers)  # now remembered
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers["content-type"] == "application/json"
    ack = http.post("/api/v1/agent/report", json={"apps": []}, headers=headers)
    assert ack.status_code == 200 and ack.json()["host"] == "h1"
    # Input the hot path does not accept reaches the application, which answers as documented.
    for params in ({"wait": -1}, {"wait": "soon"}, {"version": "v2"}, {"wait": "nan"}):
        answer = http.get("/api/v1/agent/desired", params=params, headers=headers)
        assert answer.status_code == 422, params
        assert answer.json()["kind"] == "ValidationError"
    bad = http.post(
        "/api/v1/agent/report", json={"apps": [{"app": "web", "health": "fine"}]}, headers=headers
    )
    assert bad.status_code == 422 and "apps.0.health" in bad.json()["detail"]
    unknown = http.post("/api/v1/agent/report", json={"apps": []}, headers={"Authorization": "Bearer syg_x"})
    assert unknown.status_code == 401
    controller_harness.admin.delete_host("h1")
    gone = http.post("/api/v1/agent/report", json={"apps": []}, headers=headers)
    assert gone.status_code == 401 and "register" in gone.json()["detail"]
