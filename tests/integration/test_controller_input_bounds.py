"""Bounded input: bodies refused before they are read, tokens checked first, labels, specs and metrics capped.

The body tests talk to the ASGI application directly (on the test client's event loop) with a body
served chunk by chunk, so they see exactly how much of it the controller read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from controller_fixtures import (
    ADMIN_TOKEN,
    DIGESTS,
    Harness,
    controller_settings,
    running_controller,
    spec,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

CHUNK = b"x" * 65536
HUGE_CHUNKS = 880  # 55 MiB, served one 64 KiB chunk at a time
MAX_BODY = 1 << 20


class StreamedRequest:
    """One request sent to the ASGI app, counting the body chunks the app asked for."""

    def __init__(self, method: str, path: str, headers: dict[str, str], chunks: int) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
            "state": {},
        }
        self.chunks, self.reads = chunks, 0
        self.status = 0
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if self.reads >= self.chunks:
            return {"type": "http.disconnect"}
        self.reads += 1
        return {"type": "http.request", "body": CHUNK, "more_body": self.reads < self.chunks}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


def stream(harness: Harness, method: str, path: str, headers: dict[str, str], chunks: int) -> StreamedRequest:
    request = StreamedRequest(method, path, headers, chunks)
    portal = harness.http.portal
    assert portal is not None
    portal.call(harness.http.app, request.scope, request.receive, request.send)
    return request


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "headers", "message"),
    [
        ("/api/v1/releases", {"Content-Type": "application/json"}, "needs 'Authorization: Bearer <token>'"),
        ("/api/v1/releases", bearer("sya_unknown"), "the API token is unknown or revoked"),
        ("/api/v1/agent/register", bearer("syj_unknown"), "the join token is unknown or already used"),
        ("/api/v1/agent/report", bearer("syg_unknown"), "agent token"),
        ("/api/v1/tokens", bearer("syj_unknown"), "the API token is unknown or revoked"),
    ],
)
def test_a_request_without_a_valid_token_is_refused_before_its_body_is_read(
    controller_harness: Harness, path: str, headers: dict[str, str], message: str
) -> None:
    request = stream(controller_harness, "POST", path, headers, HUGE_CHUNKS)
    assert request.status == 401, request.body
    assert message in request.body.decode()
    assert request.reads == 0, "not one chunk of the body was read"


def test_a_declared_length_over_the_limit_is_refused_unread(controller_harness: Harness) -> None:
    headers = {**bearer(ADMIN_TOKEN), "Content-Length": str(HUGE_CHUNKS * len(CHUNK))}
    request = stream(controller_harness, "POST", "/api/v1/releases", headers, HUGE_CHUNKS)
    assert request.status == 413
    assert b'"kind":"PayloadTooLargeError"' in request.body
    assert b"--max-body" in request.body
    assert request.reads == 0


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(controller_harness: Harness) -> None:
    request = stream(controller_harness, "POST", "/api/v1/releases", bearer(ADMIN_TOKEN), HUGE_CHUNKS)
    assert request.status == 413, request.body
    assert request.reads <= MAX_BODY // len(CHUNK) + 1


def test_an_agent_report_on_the_hot_path_is_bounded_too(controller_harness: Harness) -> None:
    agent = controller_harness.add_agent("h1")
    agent.sync()  # the token is known now: the report takes the hot path
    request = stream(controller_harness, "POST", "/api/v1/agent/report", bearer(agent.token), HUGE_CHUNKS)
    assert request.status == 413, request.body
    assert request.reads <= MAX_BODY // len(CHUNK) + 1


@pytest.fixture
def small_limit_harness(controller_db_url: str) -> Iterator[Harness]:
    with running_controller(controller_settings(controller_db_url, max_body=4096)) as running:
        yield running


def test_the_limit_is_the_max_body_setting(small_limit_harness: Harness) -> None:
    http = small_limit_harness.http
    body = {"image": "registry:5000/web", "digest": DIGESTS[0], "spec": spec()}
    assert http.post("/api/v1/releases", json=body, headers=bearer(ADMIN_TOKEN)).status_code == 201
    body["spec"] = {**spec(), "x-notes": "n" * 5000}
    answer = http.post("/api/v1/releases", json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": "the request body is larger than 4096 bytes; send a smaller body "
        "(the limit is the controller's --max-body setting).",
        "kind": "PayloadTooLargeError",
    }


def register(harness: Harness, labels: dict[str, str]) -> Any:
    join_token = harness.admin.create_join_token("production").token
    body = {"name": "h1", "labels": labels}
    return harness.http.post("/api/v1/agent/register", json=body, headers=bearer(join_token))


@pytest.mark.parametrize(
    "labels",
    [
        {f"k{i}": "v" for i in range(65)},
        {"k" * 65: "v"},
        {"": "v"},
        {"zone": "v" * 256},
    ],
)
def test_labels_beyond_their_caps_are_refused(controller_harness: Harness, labels: dict[str, str]) -> None:
    answer = register(controller_harness, labels)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("invalid request: labels")
    assert controller_harness.admin.hosts() == [], "nothing was registered"


def test_labels_up_to_their_caps_are_kept(controller_harness: Harness) -> None:
    labels = {f"{i:02d}" + "k" * 62: "v" * 255 for i in range(64)}
    assert register(controller_harness, labels).status_code == 201
    assert controller_harness.admin.hosts()[0].labels == labels


def test_a_spec_over_64_kib_is_refused(controller_harness: Harness) -> None:
    body = {"image": "registry:5000/web", "digest": DIGESTS[0], "spec": {**spec(), "x-notes": "n" * 70000}}
    answer = controller_harness.http.post("/api/v1/releases", json=body, headers=bearer(ADMIN_TOKEN))
    assert answer.status_code == 422
    assert "spec: Value error, the spec is 70" in answer.json()["detail"]
    assert "at most 65536 are accepted" in answer.json()["detail"]


def request_series(harness: Harness) -> set[tuple[str, str, str]]:
    text = harness.http.get("/metrics").text
    series = set()
    for family in text_string_to_metric_families(text):
        if family.name == "shipyard_controller_request_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    labels = sample.labels
                    series.add((labels["method"], labels["route"], labels["status"]))
    return series


def test_metrics_label_by_route_template_whatever_the_path_or_method(controller_harness: Harness) -> None:
    http = controller_harness.http
    for i in range(300):
        http.get(f"/api/v1/hosts/n{i}%3F")
        http.get(f"/api/v1/deployments/{i}", headers=bearer(ADMIN_TOKEN))
        http.request(f"M{i}", f"/nowhere/{i}")
    agent = controller_harness.add_agent("h1")
    agent.sync()
    agent.sync()  # the second poll takes the hot path
    series = request_series(controller_harness)
    assert ("GET", "/api/v1/hosts/{name}", "401") in series
    assert ("GET", "/api/v1/deployments/{deployment_id}", "404") in series
    assert ("other", "unmatched", "404") in series or ("other", "unmatched", "405") in series
    assert ("GET", "/api/v1/agent/desired", "200") in series
    assert ("POST", "/api/v1/agent/report", "200") in series
    assert len(series) < 15, sorted(series)
    assert not any("n1" in route or "%" in route for _, route, _ in series)
