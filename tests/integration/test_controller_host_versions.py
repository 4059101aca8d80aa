"""Hosts' Docker Engine, haproxy, kernel and shipyard versions: registered, reported, listed with skew."""

from __future__ import annotations

import pytest
from controller_fixtures import ADMIN_TOKEN, Harness

from shipyard.fleet_api.schemas.agent import HostVersions

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

DEBIAN = HostVersions(
    docker="20.10.24+dfsg1", haproxy="2.6.12-1+deb12u1", kernel="6.1.0-18", shipyard="0.1.0"
)


def host_rows(harness: Harness) -> dict[str, dict[str, object]]:
    answer = harness.http.get("/api/v1/hosts", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code == 200
    return {row["name"]: row for row in answer.json()}


def test_versions_from_registration_and_reports_with_skew(controller_harness: Harness) -> None:
    join = controller_harness.admin.create_join_token("production")
    registering = controller_harness.client(None)
    registering.host_versions = DEBIAN
    token = registering.register_agent(join.token, "h1", agent_version="0.1.0").agent_token
    assert host_rows(controller_harness)["h1"]["versions"] == DEBIAN.model_dump()

    h2, h3 = controller_harness.add_agent("h2"), controller_harness.add_agent("h3")
    h2.client.host_versions = DEBIAN
    h3.client.host_versions = DEBIAN.model_copy(update={"haproxy": "2.8.5-1"})
    for agent in (h2, h3):
        agent.client.report([], agent_version="0.1.0")  # the report an agent sends at start
    rows = host_rows(controller_harness)
    assert rows["h3"]["versions"]["haproxy"] == "2.8.5-1"  # type: ignore[index]
    assert [rows[name]["skew"] for name in ("h1", "h2", "h3")] == [[], [], ["haproxy"]]

    # A report without versions keeps what was stored; the single-host view marks skew too.
    controller_harness.client(token).report([], agent_version="0.1.0")
    assert host_rows(controller_harness)["h1"]["versions"] == DEBIAN.model_dump()
    single = controller_harness.http.get(
        "/api/v1/hosts/h3", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert single.json()["skew"] == ["haproxy"]


def test_skew_is_per_group(controller_harness: Harness) -> None:
    a, b = controller_harness.add_agent("a1", "production"), controller_harness.add_agent("b1", "staging")
    a.client.host_versions = DEBIAN
    b.client.host_versions = DEBIAN.model_copy(update={"docker": "27.3.1"})
    for agent in (a, b):
        agent.client.report([])
    rows = host_rows(controller_harness)
    assert rows["a1"]["skew"] == [] and rows["b1"]["skew"] == []


def test_oversized_or_unknown_version_fields_are_refused(controller_harness: Harness) -> None:
    agent = controller_harness.add_agent("h1")
    headers = {"Authorization": f"Bearer {agent.token}"}
    too_long = {"apps": [], "versions": {"docker": "1" * 65}}
    answer = controller_harness.http.post("/api/v1/agent/report", json=too_long, headers=headers)
    assert answer.status_code == 422
    unknown = {"apps": [], "versions": {"nginx": "1.25"}}
    answer = controller_harness.http.post("/api/v1/agent/report", json=unknown, headers=headers)
    assert answer.status_code == 422
    assert host_rows(controller_harness)["h1"]["versions"] == {}
