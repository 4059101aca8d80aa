"""The controller refuses names with a newline wherever they are given, and unbounded spec numbers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, DIGESTS, Harness, spec

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/deployments?environment=production%0A", None),
    ("GET", "/api/v1/deployments?app=web%0A", None),
    ("GET", "/api/v1/releases?app=web%0A", None),
    ("GET", "/api/v1/hosts?group=production%0A", None),
    ("GET", "/api/v1/hosts/h1%0A", None),
    ("DELETE", "/api/v1/hosts/h1%0A", None),
    ("DELETE", "/api/v1/locks/web/production%0A", None),
    ("DELETE", "/api/v1/locks/web%0A/production", None),
    ("POST", "/api/v1/environments", {"name": "staging\n"}),
    ("POST", "/api/v1/locks", {"app": "web", "environment": "production\n", "reason": "r"}),
    ("POST", "/api/v1/deployments", {"release_id": 1, "environment": "production\n"}),
    ("POST", "/api/v1/join-tokens", {"group": "production\n"}),
]


def test_names_with_a_trailing_newline_are_refused_with_422(controller_harness: Harness) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for method, url, body in REQUESTS:
        answer = controller_harness.http.request(method, url, json=body, headers=headers)
        assert answer.status_code == 422, (method, url, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        assert answer.json()["kind"] == "ValidationError"
        assert "\n" not in detail
    environments = controller_harness.http.get("/api/v1/environments", headers=headers).json()
    assert all("\n" not in env["name"] for env in environments)


def test_well_formed_names_still_work(controller_harness: Harness) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    controller_harness.add_agent("h1")
    assert controller_harness.http.get("/api/v1/hosts/h1", headers=headers).status_code == 200
    assert controller_harness.http.get("/api/v1/hosts?group=production", headers=headers).status_code == 200
    listed = controller_harness.http.get(
        "/api/v1/deployments?environment=production&app=web", headers=headers
    )
    assert listed.status_code == 200 and listed.json() == []


@pytest.mark.parametrize("monitor", ["1e300", "Infinity", "NaN"])
def test_a_release_with_an_unbounded_monitor_is_refused_with_its_key_path(
    controller_harness: Harness, monitor: str
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"image": "registry:5000/web", "digest": DIGESTS[0], "spec": spec(monitor=0.5)})
    body = body.replace('"monitor": 0.5', f'"monitor": {monitor}')
    answer = controller_harness.http.post("/api/v1/releases", content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert "rollout.monitor" in answer.json()["detail"]
    assert controller_harness.http.get("/api/v1/releases", headers=headers).json() == []
