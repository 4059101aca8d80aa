"""The agent hot path: shared long-poll answers, batched last_seen, woken rollout loop, race-safe rows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_fixtures import DIGESTS, controller_settings, running_controller, spec
from sqlalchemy import event, select

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.server.driver import RolloutDriver
from shipyard.controller.server.presence import Presence
from shipyard.controller.store import catalog, hosts
from shipyard.controller.store.db import Database
from shipyard.controller.store.models import Environment, Host
from shipyard.fleet_api.schemas.agent import DesiredState

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_many_long_polls_share_one_computation_per_change(controller_db_url: str) -> None:
    # A long recheck interval: only changes, not timers, make the cache reload during the test.
    with running_controller(controller_settings(controller_db_url, recheck_interval=30.0)) as harness:
        agent = harness.add_agent("h1")
        context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
        baseline = agent.client.desired()
        loads_before = context.desired.loads
        answers: list[DesiredState] = []
        polls = [
            threading.Thread(target=lambda: answers.append(agent.client.desired(baseline.version, wait=20)))
            for _ in range(40)
        ]
        for poll in polls:
            poll.start()
        time.sleep(0.5)
        target = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec()).id
        harness.admin.create_deployment(target, "production")
        for poll in polls:
            poll.join(timeout=60)
        assert len(answers) == 40
        assert {tuple(app.release_id for app in answer.apps) for answer in answers} == {(target,)}
        # 40 waiters, one change (plus the ticks it causes): a handful of reads, not one per waiter.
        assert context.desired.loads - loads_before <= 5


def test_a_host_is_converging_until_its_first_report_settles(controller_harness: Any) -> None:
    agent = controller_harness.add_agent("h1")
    assert [host.status for host in controller_harness.admin.hosts()] == ["converging"]
    agent.sync()
    assert [host.status for host in controller_harness.admin.hosts()] == ["ready"]


def test_reports_wake_the_rollout_loop(controller_db_url: str) -> None:
    # The timer alone would tick every 30 s; the deployment finishes quickly because reports wake it.
    with running_controller(controller_settings(controller_db_url, tick_interval=30.0)) as harness:
        for name in ("h1", "h2"):
            harness.add_agent(name)
        target = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec(monitor=0.1)).id
        deployment = harness.admin.create_deployment(target, "production")
        # Well under the 30 s timer, so only the reports can have woken it in time.
        assert harness.deploy_until(deployment.id, {"succeeded"}, timeout=20) == "succeeded"


def test_a_removed_host_is_refused_at_once_despite_the_token_cache(controller_harness: Any) -> None:
    from shipyard.errors import ControllerAuthError

    agent = controller_harness.add_agent("h1")
    agent.client.desired()  # the token is now remembered
    controller_harness.admin.delete_host("h1")
    with pytest.raises(ControllerAuthError):
        agent.client.desired()


def _database(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


def _add_host(db: Database, name: str, last_seen: datetime) -> int:
    with db.transaction() as session:
        catalog.ensure_environment(session, "production")
        host = Host(name=name, group="production", status=hosts.READY, last_seen=last_seen)
        host.token_hash = name * 4
        session.add(host)
        session.flush()
        return host.id


def test_last_seen_is_stored_in_one_batch_and_counts_for_lost_detection(controller_db_url: str) -> None:
    db = _database(controller_db_url)
    try:
        ids = [_add_host(db, f"h{n}", T0) for n in range(3)]
        now = T0 + timedelta(seconds=100)
        presence = Presence()
        driver = RolloutDriver(
            db,
            lost_after=30,
            clock=lambda: now,
            on_change=lambda: None,
            presence=presence,
            flush_interval=3600,
        )
        presence.seen(ids[0], now - timedelta(seconds=1))
        presence.seen(ids[1], now - timedelta(seconds=2))
        driver.tick()  # not due to flush yet: the in-memory times alone keep h0 and h1 from being lost
        with db.read() as session:
            statuses = {name: status for name, status in session.execute(select(Host.name, Host.status))}
            stored = session.scalar(select(Host.last_seen).where(Host.id == ids[0]))
        assert statuses == {"h0": "ready", "h1": "ready", "h2": "lost"}
        assert stored == T0
        updates: list[tuple[str, bool]] = []

        def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool) -> None:
            if statement.startswith("UPDATE hosts SET last_seen"):
                updates.append((statement, many))

        event.listen(db.engine, "before_cursor_execute", record)
        presence.seen(ids[2], now)  # h2 talks again: stored, and back from lost as converging
        driver.tick(flush=True)
        event.remove(db.engine, "before_cursor_execute", record)
        assert len(updates) == 1 and updates[0][1], "one executemany UPDATE for the whole batch"
        with db.read() as session:
            rows = {h.name: (h.last_seen, h.status) for h in session.scalars(select(Host))}
        assert rows["h0"] == (now - timedelta(seconds=1), "ready")
        assert rows["h1"] == (now - timedelta(seconds=2), "ready")
        assert rows["h2"] == (now, "converging")
        assert presence.take_pending() == {}
    finally:
        db.dispose()


def test_concurrent_environment_creation_yields_one_row(controller_db_url: str) -> None:
    db = _database(controller_db_url)
    try:
        results: list[int] = []
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with db.transaction() as session:
                    results.append(catalog.ensure_environment(session, "staging").id)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        with db.transaction() as session:
            first = catalog.ensure_environment(session, "staging").id
            racer = threading.Thread(target=second)
            racer.start()
            time.sleep(0.5)  # PostgreSQL: the racer's INSERT now waits on our uncommitted row
        racer.join(timeout=10)
        assert not errors and results == [first]
        with db.read() as session:
            assert len(session.scalars(select(Environment).where(Environment.name == "staging")).all()) == 1
    finally:
        db.dispose()


# (method, path, headers, body) sent as they are; {token} stands for the agent's token.
GOOD_REPORT = b'{"agent_version": "t", "apps": [{"app": "web", "active_release": 1, "health": "healthy"}]}'
JSON = {"content-type": "application/json"}


def web_report(fields: bytes) -> bytes:
    return b'{"apps": [{"app": "web", ' + fields + b"}]}"


PARITY_REQUESTS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", "/api/v1/agent/desired", {}, None),
    ("GET", "/api/v1/agent/desired?wait=0", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=0.001", {}, None),
    ("GET", "/api/v1/agent/desired?version=%D9%A1%D9%A2", {}, None),  # Arabic-Indic digits
    ("GET", "/api/v1/agent/desired?version=1_000", {}, None),
    ("GET", "/api/v1/agent/desired?version=%201%20", {}, None),
    ("GET", "/api/v1/agent/desired?version=1.0", {}, None),
    ("GET", "/api/v1/agent/desired?version=", {}, None),
    ("GET", "/api/v1/agent/desired?version=-1", {}, None),
    ("GET", "/api/v1/agent/desired?version=9223372036854775808", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=nan", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=inf", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=-1", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=301", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=", {}, None),
    ("GET", "/api/v1/agent/desired?version=1&wait=0&wait=x", {}, None),
    ("GET", "/api/v1/agent/desired?version=x&version=1", {}, None),
    ("GET", "/api/v1/agent/desired?unknown=1", {}, None),
    ("GET", "/api/v1/agent/desired?version=%FF", {}, None),
    ("POST", "/api/v1/agent/desired", {}, None),
    ("POST", "/api/v1/agent/report", JSON, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", {"content-type": "application/json; charset=utf-8"}, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", {"content-type": "application/vnd.shipyard+json"}, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", {"content-type": "text/plain"}, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", {"content-type": "application/x-www-form-urlencoded"}, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", {}, GOOD_REPORT),
    ("POST", "/api/v1/agent/report", JSON, GOOD_REPORT.decode().encode("utf-16")),
    ("POST", "/api/v1/agent/report", JSON, b"\xef\xbb\xbf" + GOOD_REPORT),
    ("POST", "/api/v1/agent/report", JSON, b""),
    ("POST", "/api/v1/agent/report", JSON, b"{"),
    ("POST", "/api/v1/agent/report", JSON, b"[]"),
    ("POST", "/api/v1/agent/report", JSON, b'{"apps": [], "extra": 1}'),
    ("POST", "/api/v1/agent/report", JSON, web_report(b'"active_release": 9223372036854775808')),
    ("POST", "/api/v1/agent/report", JSON, web_report(b'"active_release": ' + b"1" * 5000)),
    ("POST", "/api/v1/agent/report", JSON, web_report(b'"active_release": 1.0')),
    ("POST", "/api/v1/agent/report", JSON, web_report(b'"active_release": "1"')),
    ("POST", "/api/v1/agent/report", JSON, b'{"apps": [{"app": "web\\n"}]}'),
    ("POST", "/api/v1/agent/report", JSON, b'{"agent_version": "a", "agent_version": "b", "apps": []}'),
    ("GET", "/api/v1/agent/report", {}, None),
]


def _parity_answer(
    http: Any, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, Any]:
    answer = http.request(method, path, headers=headers, content=body)
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, answer.text


@pytest.mark.parametrize("scheme", ["Bearer {token}", "bearer  {token} "])
def test_the_hot_path_answers_exactly_as_the_routes(
    controller_db_url: str, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    from controller_fixtures import ADMIN_TOKEN, Harness
    from fastapi.testclient import TestClient

    from shipyard.controller.server.api.hot_path import AgentHotPath
    from shipyard.controller.server.app import create_app
    from shipyard.controller.store.models import Host
    from shipyard.fleet_api.client import ControllerClient

    served: list[str] = []
    answer = AgentHotPath._answer

    async def spied(self: AgentHotPath, scope: Any, *args: Any) -> None:
        served.append(scope["path"])
        await answer(self, scope, *args)

    monkeypatch.setattr(AgentHotPath, "_answer", spied)
    settings = controller_settings(controller_db_url)
    # A fixed clock: the acks' received_at and the stored rows are the same whichever path answers.
    with TestClient(create_app(settings, clock=lambda: T0)) as http:
        harness = Harness(http=http, admin=ControllerClient("http://testserver", ADMIN_TOKEN, http=http))
        harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
        agent = harness.add_agent("h1")
        context: ControllerContext = http.app.state.context  # type: ignore[attr-defined]
        with context.db.read() as session:
            host_id = session.scalars(select(Host.id).where(Host.name == "h1")).one()
        authorization = {"Authorization": scheme.format(token=agent.token)}
        differences, declined = [], []
        for method, path, headers, body in PARITY_REQUESTS:
            context.agent_tokens.forget_host(host_id)  # cold: the route answers, and remembers the token
            served.clear()
            cold = _parity_answer(http, method, path, {**authorization, **headers}, body)
            assert not served, "a cold token never takes the hot path"
            warm = _parity_answer(http, method, path, {**authorization, **headers}, body)
            if cold[0] == 200 and not served:
                declined.append((method, path, headers, body))
            if cold != warm:
                differences.append((method, path, headers, body, cold, warm))
        assert differences == []
        assert declined == [], "a known agent's good request takes the hot path"
