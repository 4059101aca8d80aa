"""The controller refuses app, environment and host names with a newline wherever they are given."""

from __future__ import annotations

from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, Harness

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/deployments?environment=production%0A", None),
    ("GET", "/api/v1/deployments?app=web%0A", None),
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
