"""Outgoing notifications on SQLite and PostgreSQL, posted to HTTP receivers on 127.0.0.1.

One receiver fails its first request (500) to show the retry; one target points at a closed port and
never succeeds, which changes nothing for the deployment it reports on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from controller_fixtures import (
    ADMIN,
    DIGESTS,
    Harness,
    controller_settings,
    running_controller,
    spec,
    wait_for,
)
from github_payloads import push, signed

from shipyard.controller.server.context import ControllerContext
from shipyard.controller.store import job_store
from shipyard.lab.ports import free_port

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

PATH_TOKEN = "T000-B000-path-token-XXXXXXXX"
SECRET = "a-webhook-secret-0123456789"


class Receiver:
    """An HTTP server that records what is posted; the first `failures` posts are answered 500."""

    def __init__(self, failures: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.answered: list[int] = []
        self._failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                payload = json.loads(self.rfile.read(length))
                status = 500 if len(receiver.answered) < receiver._failures else 200
                receiver.answered.append(status)
                if status == 200:
                    receiver.posts.append((self.path, payload))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [payload.get("event") or payload.get("text", "") for _, payload in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def harness(controller_db_url: str) -> Iterator[Harness]:
    settings = controller_settings(
        controller_db_url, run_jobs=False, notify_interval=0.05, notify_backoff=0.1
    )
    with running_controller(settings) as running:
        yield running


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    flaky, slack = Receiver(failures=1), Receiver()
    yield flaky, slack
    flaky.close()
    slack.close()


def add_target(harness: Harness, url: str, format_: str, app: str | None = None) -> dict[str, Any]:
    answer = harness.http.post(
        "/api/v1/notify", json={"url": url, "format": format_, "app": app}, headers=ADMIN
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def notifications(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/notifications?limit=100", headers=ADMIN).json())


def test_deployment_events_are_posted_retried_and_never_fail_the_deploy(
    harness: Harness, receivers: tuple[Receiver, Receiver]
) -> None:
    flaky, slack = receivers
    json_target = add_target(harness, f"{flaky.url}/hooks/{PATH_TOKEN}", "json")
    add_target(harness, f"{slack.url}/services/{PATH_TOKEN}", "slack", app="web")
    add_target(harness, f"{slack.url}/other", "slack", app="api")  # another app's: nothing for it
    dead = add_target(harness, f"http://127.0.0.1:{free_port()}/gone", "json")
    assert json_target["url"] == f"{flaky.url}/…"
    harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web"))
    deployment = harness.admin.create_deployment(release.id, "production")
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"

    # A retried post may arrive after a later event's: the order is not promised, the delivery is.
    wanted = ["deployment.started", "deployment.succeeded"]
    wait_for(lambda: sorted(flaky.events()) == wanted, what="both events at the flaky receiver")
    assert flaky.answered[0] == 500  # the first post failed and was retried
    wait_for(lambda: len(slack.posts) == 2, what="both events at the slack receiver")
    assert all(path == f"/services/{PATH_TOKEN}" for path, _ in slack.posts)
    texts = sorted(payload["text"] for _, payload in slack.posts)
    assert texts[0].startswith(":arrow_forward: deployment") and "web -> production" in texts[0]
    assert texts[1].startswith(":white_check_mark: deployment") and ": succeeded\n" in texts[1]
    started = next(payload for _, payload in flaky.posts if payload["event"] == "deployment.started")
    assert (started["app"], started["environment"], started["deployment_id"]) == (
        "web",
        "production",
        deployment.id,
    )
    assert started["image"] == f"registry:5000/web@{DIGESTS[0]}"

    wait_for(
        lambda: {n["status"] for n in notifications(harness) if n["target_id"] == dead["id"]} == {"failed"},
        timeout=30,
        what="the dead target to be given up",
    )
    by_target: dict[int, list[dict[str, Any]]] = {}
    for row in notifications(harness):
        by_target.setdefault(row["target_id"], []).append(row)
    assert sorted(row["attempts"] for row in by_target[json_target["id"]]) == [1, 2]
    assert all(row["status"] == "sent" for row in by_target[json_target["id"]])
    assert all(row["attempts"] == 6 and "ConnectError" in row["last_error"] for row in by_target[dead["id"]])
    assert harness.admin.get_deployment(deployment.id).status == "succeeded"
    shown = [
        harness.http.get("/api/v1/notify", headers=ADMIN).text,
        json.dumps(notifications(harness)),
        json.dumps([entry.model_dump(mode="json") for entry in harness.admin.audit()]),
    ]
    assert not any(PATH_TOKEN in text for text in shown)


def test_job_events_are_posted_with_their_messages_redacted(
    harness: Harness, receivers: tuple[Receiver, Receiver]
) -> None:
    flaky, _ = receivers
    add_target(harness, f"{flaky.url}/jobs", "json", app="web")
    hook = {"app": "web", "repository": "file:///srv/git/web.git", "secret": SECRET, "pipelines": []}
    hook["pipelines"] = [{"branch": "release", "environment": "production"}]
    assert harness.http.post("/api/v1/hooks", json=hook, headers=ADMIN).status_code == 201
    body, headers = signed(SECRET, "push", push("release", "e" * 40))
    job_id = harness.http.post("/hooks/github/web", content=body, headers=headers).json()["job_id"]
    context: ControllerContext = harness.http.app.state.context  # type: ignore[attr-defined]
    with context.db.transaction() as session:
        claim = job_store.claim_next(session, worker="w1", now=context.now(), lease=30)
    assert claim is not None and claim.job_id == job_id
    with context.db.transaction() as session:
        job_store.finish(
            session,
            job_id,
            worker="w1",
            status="failed",
            message="fetch failed: https://bob:s3cret-pass@git.example.com/web.git",
            timings={},
            now=context.now() + timedelta(seconds=1),
        )
    wait_for(lambda: sorted(flaky.events()) == ["job.failed", "job.started"], what="the job's events")
    failed = next(payload for _, payload in flaky.posts if payload["event"] == "job.failed")
    assert (failed["job_id"], failed["sha"], failed["environment"]) == (job_id, "e" * 40, "production")
    assert "s3cret-pass" not in failed["message"] and "https://***@git.example.com" in failed["message"]


def test_targets_are_admin_only_and_bad_urls_are_refused(harness: Harness) -> None:
    deployer = harness.admin.create_token("d", "deployer").token
    answer = harness.http.post(
        "/api/v1/notify",
        json={"url": "http://127.0.0.1:9/x", "format": "json"},
        headers={"Authorization": f"Bearer {deployer}"},
    )
    assert answer.status_code == 403
    for body in (
        {"url": "ftp://127.0.0.1/x", "format": "json"},
        {"url": "http://127.0.0.1:9/x", "format": "teams"},
    ):
        assert harness.http.post("/api/v1/notify", json=body, headers=ADMIN).status_code == 422
    created = add_target(harness, f"http://127.0.0.1:{free_port()}/x", "json")
    harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec("web"))
    harness.admin.create_deployment(release.id, "production")  # queues deployment.started for it
    assert [n["target_id"] for n in notifications(harness)] == [created["id"]]
    assert harness.http.delete(f"/api/v1/notify/{created['id']}", headers=ADMIN).status_code == 204
    assert notifications(harness) == []  # nothing left pending for a target that is gone
    assert harness.http.delete(f"/api/v1/notify/{created['id']}", headers=ADMIN).status_code == 404
