"""GitLab webhooks on SQLite and PostgreSQL: the token, the delivery id, push and merged MR events.

The job worker is off (run_jobs=False): the queue is inspected as the deliveries leave it.
"""

from __future__ import annotations

from typing import Any

import pytest
from controller_fixtures import ADMIN, Harness
from github_payloads import PIPELINES
from gitlab_payloads import ZERO_SHA, body, headers, merge_request, push, tag_push

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

TOKEN = "a-gitlab-secret-token-0123456789"
SHA = ["%040x" % (0xB0 + i) for i in range(4)]


def add_gitlab_hook(harness: Harness, app: str = "web") -> dict[str, Any]:
    hook = {
        "provider": "gitlab",
        "app": app,
        "repository": "https://gitlab.example.com/acme/web.git",
        "secret": TOKEN,
        "pipelines": PIPELINES,
    }
    answer = harness.http.post("/api/v1/hooks", json=hook, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def deliver(
    harness: Harness, event: str, payload: dict[str, Any], *, token: str = TOKEN, delivery: str | None = None
) -> Any:
    return harness.http.post(
        "/hooks/gitlab/web", content=body(payload), headers=headers(token, event, delivery)
    )


def jobs(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/jobs", headers=ADMIN).json())


def deliveries(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/hooks/deliveries", headers=ADMIN).json())


def test_push_redelivery_and_merged_merge_request_make_one_job(harness: Harness) -> None:
    created = add_gitlab_hook(harness)
    assert created["payload_path"] == "/hooks/gitlab/web" and TOKEN not in str(created)
    first = deliver(harness, "Push Hook", push("release", SHA[0]), delivery="uuid-1")
    assert first.status_code == 202 and first.json()["verdict"] == "accepted", first.text
    again = deliver(harness, "Push Hook", push("release", SHA[0]), delivery="uuid-1")
    assert again.status_code == 202 and again.json()["verdict"] == "duplicate"
    merged = deliver(harness, "Merge Request Hook", merge_request("release", SHA[0]))
    assert merged.json()["verdict"] == "duplicate" and merged.json()["job_id"] == first.json()["job_id"]
    shipped = deliver(harness, "Merge Request Hook", merge_request("main", SHA[1], iid=4))
    assert shipped.status_code == 202 and shipped.json()["verdict"] == "accepted"
    listed = {(j["sha"], j["environment"], j["trigger"], j["status"]) for j in jobs(harness)}
    assert listed == {
        (SHA[0], "production", "push", "queued"),
        (SHA[1], "staging", "merge_request", "queued"),
    }
    assert all(d["provider"] == "gitlab" for d in deliveries(harness))


def test_the_idempotency_key_names_the_delivery_when_there_is_no_event_uuid(harness: Harness) -> None:
    add_gitlab_hook(harness)
    sent = headers(TOKEN, "Push Hook")
    del sent["X-Gitlab-Event-UUID"]
    sent["Idempotency-Key"] = "retry-key-7"
    for verdict in ("accepted", "duplicate"):
        answer = harness.http.post("/hooks/gitlab/web", content=body(push("release", SHA[2])), headers=sent)
        assert answer.status_code == 202 and answer.json()["verdict"] == verdict
    assert [d["delivery_id"] for d in deliveries(harness)] == ["retry-key-7", "retry-key-7"]
    del sent["Idempotency-Key"]
    missing = harness.http.post("/hooks/gitlab/web", content=body(push("release", SHA[2])), headers=sent)
    assert missing.status_code == 400 and "X-Gitlab-Event-UUID" in missing.json()["detail"]


def test_ignored_events_are_2xx_with_the_reason(harness: Harness) -> None:
    add_gitlab_hook(harness)
    cases = [
        ("Push Hook", push("release", ZERO_SHA), "was deleted"),
        ("Push Hook", push("feature", SHA[0]), "has no pipeline"),
        ("Tag Push Hook", tag_push("v1.0", SHA[0]), "does not ship"),
        ("Merge Request Hook", merge_request("release", None, action="open", state="opened"), "not merged"),
        ("Note Hook", {"object_kind": "note"}, "does not ship"),
    ]
    for event, payload, reason in cases:
        answer = deliver(harness, event, payload)
        assert answer.status_code == 202, answer.text
        assert answer.json()["verdict"] == "ignored" and reason in answer.json()["detail"]
    assert jobs(harness) == []
    assert all(d["verdict"] == "ignored" and d["reason"] for d in deliveries(harness))


def test_a_wrong_or_missing_token_is_401_recorded_and_audited(harness: Harness) -> None:
    add_gitlab_hook(harness)
    assert (
        deliver(harness, "Push Hook", push("release", SHA[0]), token="not-the-token-at-all-0000").status_code
        == 401
    )
    no_token = headers(TOKEN, "Push Hook")
    del no_token["X-Gitlab-Token"]
    answer = harness.http.post("/hooks/gitlab/web", content=body(push("release", SHA[0])), headers=no_token)
    assert answer.status_code == 401 and "X-Gitlab-Token" in answer.json()["detail"]
    assert jobs(harness) == []
    assert [d["verdict"] for d in deliveries(harness)] == ["rejected", "rejected"]
    assert len(harness.admin.audit(action="hook.rejected")) == 2
    assert TOKEN not in str([entry.model_dump() for entry in harness.admin.audit()])


def test_a_delivery_to_the_other_providers_route_is_404(harness: Harness) -> None:
    add_gitlab_hook(harness)
    answer = harness.http.post(
        "/hooks/github/web",
        content=b"{}",
        headers={"X-GitHub-Delivery": "d-1", "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"},
    )
    assert answer.status_code == 404 and "gitlab hook" in answer.json()["detail"]
    malformed = harness.http.post(
        "/hooks/gitlab/web", content=b"{not json", headers=headers(TOKEN, "Push Hook")
    )
    assert malformed.status_code == 400
    assert jobs(harness) == []
