"""Previews on GitLab merge requests, on the real controller, SQLite and PostgreSQL: a Merge Request
Hook delivery does for an app's previews what a GitHub pull_request does (test_previews_controller.py).

The job worker is off (run_jobs=False): the builds the deliveries queue are inspected, not run; the
build and deploy of a preview's job are the same as for GitHub (test_previews_build.py, the lab).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from controller_fixtures import ADMIN, Harness, controller_settings, running_controller, wait_for
from github_payloads import PIPELINES
from gitlab_payloads import body, headers, merge_request_hook

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

TOKEN = "a-gitlab-secret-token-0123456789"
REPO = "https://gitlab.example.com/acme/web.git"
SHA = ["%040x" % (0xD0 + i) for i in range(8)]
DOMAIN = "preview.test"
MR = "Merge Request Hook"


@pytest.fixture
def web(controller_db_url: str) -> Iterator[Harness]:
    """A controller (job worker off) with app web: a release with previews: and a GitLab hook."""
    settings = controller_settings(controller_db_url, run_jobs=False, preview_reconcile_interval=0.3)
    with running_controller(settings) as harness:
        spec = {
            "app": "web",
            "image": "registry:5000/web",
            "env": {"secret": ["API_KEY"]},
            "previews": {"domain": DOMAIN, "ttl": "1h", "max": 3},
        }
        release = {"image": spec["image"], "digest": "sha256:" + "1" * 64, "spec": spec}
        answer = harness.http.post("/api/v1/releases", json=release, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        hook = {
            "provider": "gitlab",
            "app": "web",
            "repository": REPO,
            "secret": TOKEN,
            "pipelines": PIPELINES,
        }
        answer = harness.http.post("/api/v1/hooks", json=hook, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        yield harness


def deliver(harness: Harness, payload: dict[str, Any], *, token: str = TOKEN, status: int = 202) -> Any:
    answer = harness.http.post("/hooks/gitlab/web", content=body(payload), headers=headers(token, MR))
    assert answer.status_code == status, answer.text
    return answer.json()


def by_pr(harness: Harness) -> dict[int, dict[str, Any]]:
    answer = harness.http.get("/api/v1/previews", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return {row["pr"]: row for row in reversed(answer.json())}


def jobs(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/jobs", headers=ADMIN).json())


def job(harness: Harness, job_id: int) -> dict[str, Any]:
    return dict(harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json())


def test_open_update_and_close_build_and_tear_down_the_merge_requests_preview(web: Harness) -> None:
    opened = deliver(web, merge_request_hook("open", 7, SHA[1]))
    assert opened["verdict"] == "accepted" and "preview pr-7: building" in opened["detail"], opened
    first = job(web, opened["job_id"])
    assert (first["environment"], first["sha"], first["status"]) == ("pr-7", SHA[1], "queued")
    assert (first["trigger"], first["created_by"], first["branch"]) == (
        "merge_request",
        "hook:gitlab",
        "merge-requests/7/head",
    )
    shown = by_pr(web)[7]
    assert (shown["status"], shown["repository"], shown["fork"]) == ("queued", REPO, False)
    assert shown["host_name"] == f"pr-7.web.{DOMAIN}"
    [created] = web.admin.audit(action="preview.create")
    assert created.actor == "hook:gitlab" and created.target == "web/pr-7"

    # A new title or labels: no oldrev, nothing changes.
    retitled = deliver(web, merge_request_hook("update", 7, SHA[1]))
    assert retitled["verdict"] == "ignored" and retitled["job_id"] is None
    assert [j["id"] for j in jobs(web)] == [opened["job_id"]] and by_pr(web)[7]["sha"] == SHA[1]

    # New commits: the older build is cancelled, the newer one queued.
    pushed = deliver(web, merge_request_hook("update", 7, SHA[2], oldrev=SHA[1]))
    assert pushed["verdict"] == "accepted" and pushed["job_id"] != opened["job_id"]
    assert job(web, opened["job_id"])["status"] == "cancelled"
    assert by_pr(web)[7]["sha"] == SHA[2]

    closed = deliver(web, merge_request_hook("close", 7, SHA[2]))
    assert closed["verdict"] == "accepted" and "torn down: pr-7 closed" in closed["detail"], closed
    assert job(web, pushed["job_id"])["status"] == "cancelled"
    wait_for(lambda: by_pr(web)[7]["status"] == "closed", timeout=30, what="the reconciler to close pr-7")
    reopened = deliver(web, merge_request_hook("reopen", 7, SHA[2]))
    assert reopened["verdict"] == "accepted" and by_pr(web)[7]["status"] == "queued"

    # Approvals and the like say nothing to previews.
    approved = deliver(web, merge_request_hook("approved", 7, SHA[2]))
    assert approved["verdict"] == "ignored" and approved["job_id"] is None


def test_a_merge_closes_the_preview_and_ships_the_merge_commit(web: Harness) -> None:
    opened = deliver(web, merge_request_hook("open", 9, SHA[3]))
    merged = deliver(web, merge_request_hook("merge", 9, SHA[3], target="main", merge_sha=SHA[4]))
    assert merged["verdict"] == "accepted" and "torn down: pr-9 closed" in merged["detail"], merged
    assert job(web, opened["job_id"])["status"] == "cancelled"
    shipped = job(web, merged["job_id"])
    assert (shipped["environment"], shipped["sha"], shipped["branch"], shipped["trigger"]) == (
        "staging",
        SHA[4],
        "main",
        "merge_request",
    )
    assert shipped["status"] == "queued" and shipped["created_by"] == "hook:gitlab"
    wait_for(lambda: by_pr(web)[9]["status"] == "closed", timeout=30, what="the reconciler to close pr-9")


def test_a_forks_merge_request_is_marked_fork(web: Harness) -> None:
    deliver(web, merge_request_hook("open", 11, SHA[5], fork=True))
    deliver(web, merge_request_hook("open", 12, SHA[5]))  # stacked on the same commit: its own preview
    shown = by_pr(web)
    assert shown[11]["fork"] and not shown[12]["fork"]
    [created] = [e for e in web.admin.audit(action="preview.create") if e.target == "web/pr-11"]
    assert created.detail["fork"] is True


def test_a_wrong_token_is_refused_before_anything_is_stored(web: Harness) -> None:
    refused = deliver(
        web, merge_request_hook("open", 13, SHA[6]), token="not-the-token-0123456789", status=401
    )
    assert refused["kind"] == "UnauthorizedError" and TOKEN not in str(refused)
    assert by_pr(web) == {} and jobs(web) == []
    [delivery] = web.http.get("/api/v1/hooks/deliveries", headers=ADMIN).json()
    assert (delivery["verdict"], delivery["reason"]) == ("rejected", "bad token")
    assert [e.action for e in web.admin.audit(action="hook.rejected")] == ["hook.rejected"]
