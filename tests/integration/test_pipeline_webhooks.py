"""The webhook and jobs API on SQLite and PostgreSQL: verify, store, answer; queue, supersede, recover.

The job worker is off here (run_jobs=False) so the queue can be inspected as the deliveries leave it;
test_pipeline_e2e.py runs jobs for real.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import ADMIN, Harness, controller_settings, running_controller, wait_for
from github_payloads import PIPELINES, ZERO_SHA, merged_pull_request, ping, push, signed
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from shipyard.controller.server.pipeline.worker import JobWorker
from shipyard.controller.store import job_store, notify_store
from shipyard.domain.spec import SecretsSpec
from shipyard.fleet_api.pipeline_client import parse_events
from shipyard.secrets.factory import open_store

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

SECRET = "a-webhook-secret-0123456789"
SHA = ["%040x" % (0xA0 + i) for i in range(8)]


def add_hook(harness: Harness, app: str = "web", secret: str = SECRET) -> dict[str, Any]:
    body = {"app": app, "repository": "file:///srv/git/web.git", "secret": secret, "pipelines": PIPELINES}
    answer = harness.http.post("/api/v1/hooks", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def deliver(
    harness: Harness,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    delivery: str | None = None,
) -> Any:
    body, headers = signed(secret, event, payload, delivery)
    return harness.http.post("/hooks/github/web", content=body, headers=headers)


def jobs(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/jobs", headers=ADMIN).json())


def deliveries(harness: Harness) -> list[dict[str, Any]]:
    return list(harness.http.get("/api/v1/hooks/deliveries", headers=ADMIN).json())


def test_hooks_registry_never_shows_the_secret(harness: Harness) -> None:
    created = add_hook(harness)
    assert created["payload_path"] == "/hooks/github/web"
    listed = harness.http.get("/api/v1/hooks", headers=ADMIN)
    assert SECRET not in listed.text and SECRET not in str(created)
    again = harness.http.post(
        "/api/v1/hooks",
        json={"app": "web", "repository": "file:///x", "secret": SECRET, "pipelines": PIPELINES},
        headers=ADMIN,
    )
    assert again.status_code == 409 and "already has a hook" in again.json()["detail"]
    short = harness.http.post(
        "/api/v1/hooks",
        json={"app": "api", "repository": "file:///x", "secret": "short", "pipelines": PIPELINES},
        headers=ADMIN,
    )
    assert short.status_code == 422 and "short" not in short.json()["detail"]
    deployer = harness.admin.create_token("ci", "deployer").token
    refused = harness.http.get("/api/v1/hooks", headers={"Authorization": f"Bearer {deployer}"})
    assert refused.status_code == 403
    assert harness.http.delete("/api/v1/hooks/web", headers=ADMIN).status_code == 204
    assert harness.http.get("/api/v1/hooks", headers=ADMIN).json() == []
    actions = {entry.action for entry in harness.admin.audit()}
    assert {"hook.add", "hook.remove"} <= actions
    assert SECRET not in str([entry.model_dump() for entry in harness.admin.audit()])


def test_ping_push_redelivery_and_merged_pull_request(harness: Harness) -> None:
    add_hook(harness)
    assert deliver(harness, "ping", ping()).status_code == 200
    first = deliver(harness, "push", push("release", SHA[0]), delivery="d-1")
    assert first.status_code == 202 and first.json()["verdict"] == "accepted"
    job_id = first.json()["job_id"]
    again = deliver(harness, "push", push("release", SHA[0]), delivery="d-1")
    assert again.status_code == 202 and again.json()["verdict"] == "duplicate"
    merged = deliver(harness, "pull_request", merged_pull_request("release", SHA[0]))
    assert merged.status_code == 202 and merged.json()["verdict"] == "duplicate"
    assert merged.json()["job_id"] == job_id
    listed = jobs(harness)
    assert [(j["id"], j["sha"], j["environment"], j["status"], j["trigger"]) for j in listed] == [
        (job_id, SHA[0], "production", "queued", "push")
    ]
    assert [d["verdict"] for d in deliveries(harness)] == ["duplicate", "duplicate", "accepted", "ping"]


def test_ignored_events_are_recorded_with_their_reason(harness: Harness) -> None:
    add_hook(harness)
    cases = [
        ("push", {**push("release", SHA[1]), "ref": "refs/tags/v1.0"}, "not to a branch"),
        ("push", push("release", ZERO_SHA, deleted=True), "was deleted"),
        ("push", push("feature", SHA[1]), "has no pipeline"),
        ("issues", {"action": "opened", "issue": {"number": 1}}, "does not ship anything"),
    ]
    for event, payload, reason in cases:
        answer = deliver(harness, event, payload)
        assert answer.status_code == 202
        assert answer.json()["verdict"] == "ignored" and reason in answer.json()["detail"]
    assert jobs(harness) == []
    assert all(d["verdict"] == "ignored" and d["reason"] for d in deliveries(harness))


def test_a_hook_without_pipelines_ships_no_push_nor_merge(harness: Harness) -> None:
    body = {"app": "web", "repository": "file:///srv/git/web.git", "secret": SECRET}
    answer = harness.http.post("/api/v1/hooks", json=body, headers=ADMIN)  # pipelines: none given
    assert answer.status_code == 201, answer.text
    assert answer.json()["pipelines"] == []
    pushed = deliver(harness, "push", push("release", SHA[2]))
    assert pushed.status_code == 202
    assert pushed.json()["verdict"] == "ignored" and "has no pipeline" in pushed.json()["detail"]
    merged = deliver(harness, "pull_request", merged_pull_request("release", SHA[3]))
    assert merged.status_code == 202 and merged.json()["verdict"] == "ignored"
    assert jobs(harness) == []


@pytest.mark.parametrize("controller_db_url", ["postgresql"], indirect=True)  # row locks are PostgreSQL's
def test_deliveries_that_queue_nothing_never_wait_on_the_hook_lock(
    harness: Harness, controller_db_url: str
) -> None:
    """Only a delivery that ships a commit locks the hook row (for its duplicate checks): a ping or an
    ignored push is stored and answered while another transaction holds that lock."""
    add_hook(harness)
    engine = create_engine(controller_db_url)
    answers: list[int] = []
    try:
        with engine.begin() as holder:
            holder.execute(text("SELECT id FROM hooks FOR UPDATE"))
            sender = threading.Thread(
                target=lambda: answers.extend(
                    deliver(harness, event, payload).status_code
                    for event, payload in (("ping", ping()), ("push", push("feature", SHA[2])))
                ),
                daemon=True,
            )
            sender.start()
            sender.join(30)  # with the lock still held: a delivery that waited on it is not back yet
            assert answers == [200, 202]
    finally:
        engine.dispose()
    assert [d["verdict"] for d in deliveries(harness)] == ["ignored", "ping"]


def test_bad_signature_is_401_recorded_audited_and_changes_nothing(harness: Harness) -> None:
    add_hook(harness)
    answer = deliver(harness, "push", push("release", SHA[0]), secret="not-the-right-secret-value")
    assert answer.status_code == 401
    body, headers = signed(SECRET, "push", push("release", SHA[0]))
    tampered = harness.http.post("/hooks/github/web", content=body + b" ", headers=headers)
    assert tampered.status_code == 401
    del headers["X-Hub-Signature-256"]
    assert harness.http.post("/hooks/github/web", content=body, headers=headers).status_code == 401
    assert jobs(harness) == []
    assert [d["verdict"] for d in deliveries(harness)] == ["rejected"] * 3
    assert len(harness.admin.audit(action="hook.rejected")) == 3


def test_malformed_unknown_and_oversized_requests(harness: Harness) -> None:
    add_hook(harness)
    malformed = deliver(harness, "push", b"{not json")
    assert malformed.status_code == 400 and "JSON" in malformed.json()["detail"]
    body, headers = signed(SECRET, "push", push("release", SHA[0]))
    assert harness.http.post("/hooks/github/nobody", content=body, headers=headers).status_code == 404
    assert harness.http.post("/hooks/github/Bad_Name", content=body, headers=headers).status_code == 404
    too_big = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    big_body, big_headers = signed(SECRET, "push", too_big)
    answer = harness.http.post("/hooks/github/web", content=big_body, headers=big_headers)
    assert answer.status_code == 413
    no_delivery = {key: value for key, value in headers.items() if key != "X-GitHub-Delivery"}
    assert harness.http.post("/hooks/github/web", content=body, headers=no_delivery).status_code == 400
    assert jobs(harness) == []


def test_webhooks_answered_before_the_router_keep_its_metrics_and_its_other_answers(harness: Harness) -> None:
    add_hook(harness)
    assert deliver(harness, "ping", ping()).status_code == 200
    body, headers = signed(SECRET, "push", push("release", SHA[0]))
    assert harness.http.post("/hooks/github/nobody", content=body, headers=headers).status_code == 404
    assert harness.http.get("/hooks/github/web").status_code == 405  # only POST is a delivery
    assert harness.http.post("/hooks/github/web/extra", content=body, headers=headers).status_code == 404
    series = set()
    for family in text_string_to_metric_families(harness.http.get("/metrics").text):
        if family.name == "shipyard_controller_request_seconds":
            series |= {
                (sample.labels["method"], sample.labels["route"], sample.labels["status"])
                for sample in family.samples
                if sample.name.endswith("_count") and sample.labels["route"].startswith("/hooks")
            }
    assert series == {
        ("POST", "/hooks/github/{app}", "200"),
        ("POST", "/hooks/github/{app}", "404"),
        ("GET", "/hooks/github/{app}", "405"),
    }


def test_rotation_accepts_both_secrets_until_it_ends(harness: Harness) -> None:
    add_hook(harness)
    new = "the-next-webhook-secret-abcdef"
    rotated = harness.http.post("/api/v1/hooks/web/rotate", json={"secret": new}, headers=ADMIN)
    assert rotated.status_code == 200 and rotated.json()["rotating"] is True
    assert deliver(harness, "ping", ping(), secret=SECRET).status_code == 200
    assert deliver(harness, "ping", ping(), secret=new).status_code == 200
    ended = harness.http.post("/api/v1/hooks/web/rotate", json={}, headers=ADMIN)
    assert ended.status_code == 200 and ended.json()["rotating"] is False
    assert deliver(harness, "ping", ping(), secret=SECRET).status_code == 401
    assert deliver(harness, "ping", ping(), secret=new).status_code == 200
    assert harness.http.post("/api/v1/hooks/web/rotate", json={}, headers=ADMIN).status_code == 409


def test_newer_commits_supersede_and_older_ones_never_run(harness: Harness) -> None:
    add_hook(harness)
    deliver(harness, "push", push("release", SHA[0], timestamp="2026-11-29T12:00:00Z"))
    deliver(harness, "push", push("release", SHA[1], timestamp="2026-11-29T12:05:00Z"))
    late = deliver(harness, "push", push("release", SHA[2], timestamp="2026-11-29T11:00:00Z"))
    assert "ships a newer commit" in late.json()["detail"]
    deliver(harness, "push", push("main", SHA[3]))
    status = {j["sha"]: j["status"] for j in jobs(harness)}
    assert status == {SHA[0]: "superseded", SHA[1]: "queued", SHA[2]: "superseded", SHA[3]: "queued"}


def test_cancel_and_retry(harness: Harness) -> None:
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    cancelled = harness.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert harness.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=ADMIN).status_code == 409
    retried = harness.http.post(f"/api/v1/jobs/{job_id}/retry", headers=ADMIN)
    assert retried.status_code == 201
    assert (retried.json()["status"], retried.json()["retry_of"]) == ("queued", job_id)
    again = harness.http.post(f"/api/v1/jobs/{retried.json()['id']}/retry", headers=ADMIN)
    assert again.status_code == 409 and "only a finished job" in again.json()["detail"]
    assert harness.http.get("/api/v1/jobs/999", headers=ADMIN).status_code == 404


def test_an_expired_lease_is_interrupted_and_retried_once(harness: Harness) -> None:
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    context = harness.http.app.state.context  # type: ignore[attr-defined]
    now = context.now()
    with context.db.transaction() as session:
        notify_store.add_target(
            session, url="https://chat.example/hook", format_="json", app=None, actor="admin", source_ip=None
        )
        claim = job_store.claim_next(session, worker="killed-worker", now=now, lease=5)
    assert claim is not None and claim.job_id == job_id
    with context.db.transaction() as session:  # still within its lease: nothing happens
        assert job_store.recover_expired(session, now=now + timedelta(seconds=1)) == []
    with context.db.transaction() as session:
        retried = job_store.recover_expired(session, now=now + timedelta(seconds=6))
    first = harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json()
    assert first["status"] == "interrupted" and "lease" in first["message"]
    assert len(retried) == 1
    with context.db.transaction() as session:
        claim = job_store.claim_next(session, worker="killed-again", now=now, lease=5)
    assert claim is not None and claim.job_id == retried[0]
    with context.db.transaction() as session:
        assert job_store.recover_expired(session, now=now + timedelta(seconds=6)) == []
    statuses = sorted((j["attempt"], j["status"]) for j in jobs(harness))
    assert statuses == [(1, "interrupted"), (2, "interrupted")]
    with context.db.read() as session:  # each interruption is announced like any other end of a job
        events = [n.event for n in notify_store.recent(session) if n.payload.get("job_id") == job_id]
    assert sorted(events) == ["job.interrupted", "job.started"]


def test_a_job_stopped_with_its_controller_is_interrupted_and_retried_at_once(harness: Harness) -> None:
    """No wait for the lease: the stopping worker hands the job over itself, and only its own job."""
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    context = harness.http.app.state.context  # type: ignore[attr-defined]
    now = context.now()
    with context.db.transaction() as session:
        assert job_store.claim_next(session, worker="stopping", now=now, lease=30) is not None
    cause = "the controller stopped during build; stopped docker build (SIGTERM)"
    with context.db.transaction() as session:
        assert not job_store.interrupt(session, job_id, worker="another", cause=cause, timings={}, now=now)
    with context.db.transaction() as session:
        assert job_store.interrupt(
            session, job_id, worker="stopping", cause=cause, timings={"fetch": 1.0}, now=now
        )
    stopped = harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json()
    assert (stopped["status"], stopped["message"]) == ("interrupted", f"{cause}; retried once")
    assert stopped["timings"] == {"fetch": 1.0}
    retry = next(j for j in jobs(harness) if j["retry_of"] == job_id)
    assert (retry["status"], retry["attempt"]) == ("queued", 2)
    with context.db.transaction() as session:  # the retry can start right away, lease or not
        claim = job_store.claim_next(session, worker="restarted", now=now, lease=30)
    assert claim is not None and claim.job_id == retry["id"]


def test_a_restarted_controller_finishes_a_job_left_running(controller_db_url: str) -> None:
    """A controller stopped mid-job: the next one recovers the lease and runs the retry to an end."""
    with running_controller(controller_settings(controller_db_url, run_jobs=False)) as first:
        add_hook(first)
        job_id = deliver(first, "push", push("release", SHA[0])).json()["job_id"]
        context = first.http.app.state.context  # type: ignore[attr-defined]
        with context.db.transaction() as session:
            assert job_store.claim_next(session, worker="gone", now=context.now(), lease=0.5) is not None
    settings = controller_settings(controller_db_url, job_lease=2.0)
    with running_controller(settings) as second:
        worker: JobWorker = second.http.app.state.job_worker  # type: ignore[attr-defined]

        def both_finished() -> bool:
            worker.wake()
            found = jobs(second)
            return len(found) == 2 and all(j["status"] not in ("queued", "running") for j in found)

        wait_for(both_finished, timeout=60, what="the interrupted job and its retry to finish")
        finished = jobs(second)
        by_id = {j["id"]: j for j in finished}
        assert by_id[job_id]["status"] == "interrupted"
        retry = next(j for j in finished if j["retry_of"] == job_id)
        # The repository does not exist: the retry fails at fetch, saying so, rather than hanging.
        assert retry["status"] == "failed" and retry["message"].startswith("fetch failed: git fetch failed")
        log = second.http.get(f"/api/v1/jobs/{retry['id']}/log", headers=ADMIN).json()
        assert any("fetching file:///srv/git/web.git" in line["line"] for line in log)


def test_cancelling_a_running_job_stops_it_at_its_next_step(harness: Harness) -> None:
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    context = harness.http.app.state.context  # type: ignore[attr-defined]
    with context.db.transaction() as session:
        assert job_store.claim_next(session, worker="w", now=context.now(), lease=30) is not None
    asked = harness.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=ADMIN).json()
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    with context.db.transaction() as session:  # what the worker asks when a step starts
        assert job_store.set_step(session, job_id, "build", {"fetch": 1.0}) is True
    second = deliver(harness, "push", push("release", SHA[1], timestamp="2026-11-29T13:00:00Z"))
    assert second.json()["verdict"] == "accepted"
    with context.db.transaction() as session:  # one running job per app and environment
        assert job_store.claim_next(session, worker="w2", now=context.now(), lease=30) is None


def test_log_events_resume_after_the_last_event_id(harness: Harness) -> None:
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    context = harness.http.app.state.context  # type: ignore[attr-defined]
    now = context.now()
    with context.db.transaction() as session:
        job_store.append_log(session, job_id, [("fetch", f"line {n}", now) for n in range(5)])
    harness.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=ADMIN)
    lines = harness.http.get(f"/api/v1/jobs/{job_id}/log", headers=ADMIN).json()
    assert [line["line"] for line in lines] == [f"line {n}" for n in range(5)]

    def events(headers: dict[str, str]) -> list[tuple[str, str, str]]:
        parsed = list(
            parse_events(harness.http.get(f"/api/v1/jobs/{job_id}/events", headers=headers).iter_lines())
        )
        return [(event, event_id or "", data) for event, event_id, data in parsed]

    everything = events(ADMIN)
    assert [event for event, _, _ in everything] == ["log"] * 5 + ["end"]
    assert json.loads(everything[-1][2])["status"] == "cancelled"
    resumed = events({**ADMIN, "Last-Event-ID": str(lines[2]["id"])})
    assert [json.loads(data)["line"] for event, _, data in resumed if event == "log"] == ["line 3", "line 4"]
    assert harness.http.get("/api/v1/jobs/999/events", headers=ADMIN).status_code == 404


def test_ssh_repositories_fetch_with_the_deploy_key_from_the_controller_store(
    controller_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key reaches ssh (here refused: nothing listens on port 1) and never the job log."""
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", base64.b64encode(b"m" * 32).decode())
    key_body = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSVBa"
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----\n"
    open_store(SecretsSpec(), tmp_path, "controller").set("web_deploy_key", key)
    settings = controller_settings(controller_db_url, secrets_root=tmp_path)
    with running_controller(settings) as harness:
        for app, secret_name in (("web", "web_deploy_key"), ("api", "missing_key")):
            body = {
                "app": app,
                "repository": "ssh://git@127.0.0.1:1/srv/web.git",
                "secret": SECRET,
                "pipelines": PIPELINES,
                "deploy_key_secret": secret_name,
            }
            assert harness.http.post("/api/v1/hooks", json=body, headers=ADMIN).status_code == 201
        payload, headers = signed(SECRET, "push", push("release", SHA[0]))
        keyed = harness.http.post("/hooks/github/web", content=payload, headers=headers).json()["job_id"]
        missing = harness.http.post("/hooks/github/api", content=payload, headers=headers).json()["job_id"]

        def finished() -> bool:
            found = {j["id"]: j["status"] for j in jobs(harness)}
            return found.get(keyed) == "failed" and found.get(missing) == "failed"

        wait_for(finished, timeout=60, what="both jobs to fail at fetch")
        job = harness.http.get(f"/api/v1/jobs/{keyed}", headers=ADMIN).json()
        assert job["message"].startswith("fetch failed: git fetch failed")
        log = harness.http.get(f"/api/v1/jobs/{keyed}/log", headers=ADMIN).text
        assert "using deploy key web_deploy_key" in log and "127.0.0.1 port 1" in log
        assert key_body not in log and key_body not in job["message"]
        other = harness.http.get(f"/api/v1/jobs/{missing}", headers=ADMIN).json()
        assert "missing_key" in other["message"] and "shipyard secrets set" in other["message"]
        listed = harness.http.get("/api/v1/hooks", headers=ADMIN).json()
        assert {h["deploy_key_secret"] for h in listed} == {"web_deploy_key", "missing_key"}


MAX_ID = 2**63 - 1
HOOK = {"app": "web", "repository": "file:///srv/git/web.git", "secret": SECRET, "pipelines": PIPELINES}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"/api/v1/jobs/{MAX_ID + 1}", None),
        ("get", f"/api/v1/jobs/{MAX_ID + 1}/events", None),
        ("post", f"/api/v1/jobs/{MAX_ID + 1}/retry", None),
        ("post", "/api/v1/jobs/0/cancel", None),
        ("get", f"/api/v1/jobs/1/log?after={MAX_ID + 1}", None),
        ("get", "/api/v1/jobs?limit=1e300", None),
        ("get", "/api/v1/jobs?app=web%00", None),
        ("get", "/api/v1/jobs?environment=production%0A", None),
        ("get", "/api/v1/hooks/deliveries?app=web%00", None),
        ("delete", "/api/v1/hooks/web%0A", None),
        ("post", "/api/v1/hooks/Web_App/rotate", {}),
        ("post", "/api/v1/hooks/web/rotate", {"secret": "s" * 16 + "\x00"}),
        ("post", "/api/v1/hooks", {**HOOK, "repository": "file:///srv/git/web.git\x00"}),
        ("post", "/api/v1/hooks", {**HOOK, "secret": SECRET + "\x00"}),
        ("post", "/api/v1/hooks", {**HOOK, "pipelines": [{"branch": "main\x01", "environment": "staging"}]}),
        ("post", "/api/v1/hooks", {**HOOK, "app": "web\n"}),
    ],
)
def test_pipeline_input_out_of_bounds_is_422_and_changes_nothing(
    harness: Harness, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = harness.http.request(method, path, json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json()["kind"] == "ValidationError"
    assert harness.http.get("/api/v1/hooks", headers=ADMIN).json() == []


@pytest.mark.parametrize("last_event_id", [b"\xb2", str(MAX_ID + 1).encode(), b"-1", b"12abc"])
def test_a_malformed_last_event_id_is_422(harness: Harness, last_event_id: bytes) -> None:
    add_hook(harness)
    job_id = deliver(harness, "push", push("release", SHA[0])).json()["job_id"]
    harness.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=ADMIN)
    headers = {**ADMIN, "Last-Event-ID": last_event_id}
    answer = harness.http.get(f"/api/v1/jobs/{job_id}/events", headers=headers)  # type: ignore[arg-type]
    assert answer.status_code == 422, answer.text
    assert "Last-Event-ID" in answer.json()["detail"]


def test_the_largest_job_id_is_answered_404(harness: Harness) -> None:
    for path in (f"/api/v1/jobs/{MAX_ID}", f"/api/v1/jobs/{MAX_ID}/log", f"/api/v1/jobs/{MAX_ID}/events"):
        answer = harness.http.get(path, headers=ADMIN)
        assert answer.status_code == 404, answer.text
    assert harness.http.post(f"/api/v1/jobs/{MAX_ID}/retry", headers=ADMIN).status_code == 404


def test_the_webhook_refusals_carry_the_error_body(harness: Harness) -> None:
    add_hook(harness)
    body, headers = signed(SECRET, "push", push("release", SHA[0]))
    unsigned = {key: value for key, value in headers.items() if key != "X-Hub-Signature-256"}
    no_event = {key: value for key, value in headers.items() if key != "X-GitHub-Event"}
    too_big, big_headers = signed(SECRET, "push", b"{" + b" " * (25 * 1024 * 1024) + b"}")
    refusals = [
        ("/hooks/github/web", body, unsigned, 401, "UnauthorizedError"),
        ("/hooks/github/nobody", body, headers, 404, "NotFoundError"),
        ("/hooks/github/web%0A", body, headers, 404, "NotFoundError"),
        ("/hooks/github/web", body, no_event, 400, "BadRequestError"),
        ("/hooks/github/web", too_big, big_headers, 413, "PayloadTooLargeError"),
    ]
    for path, content, sent_headers, status, kind in refusals:
        answer = harness.http.post(path, content=content, headers=sent_headers)
        assert (answer.status_code, answer.json()["kind"]) == (status, kind), (path, answer.text)
        assert answer.json()["detail"].endswith(".")
    assert jobs(harness) == []


def test_control_characters_quoted_from_a_signed_payload_are_not_stored(harness: Harness) -> None:
    """A ref is quoted in the delivery's reason; PostgreSQL cannot store NUL (it answered 500)."""
    add_hook(harness)
    payload = {**push("release", SHA[0]), "ref": "refs/tags/v1\x00\n"}
    answer = deliver(harness, "push", payload)
    assert answer.status_code == 202, answer.text
    assert answer.json()["verdict"] == "ignored"
    assert answer.json()["detail"] == "push to refs/tags/v1\ufffd\ufffd, not to a branch"
    assert [d["reason"] for d in deliveries(harness)] == [answer.json()["detail"]]


def test_the_event_stream_and_the_webhook_are_documented_as_they_answer(harness: Harness) -> None:
    paths = harness.http.get("/openapi.json").json()["paths"]
    stream = paths["/api/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    events = stream["text/event-stream"]["itemSchema"]["oneOf"]
    assert [event["properties"]["event"]["const"] for event in events] == ["log", "end"]
    webhook = paths["/hooks/github/{app}"]["post"]
    assert webhook["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
    headers = {p["name"] for p in webhook["parameters"] if p["in"] == "header"}
    assert headers == {"X-GitHub-Delivery", "X-GitHub-Event", "X-Hub-Signature-256"}
    assert set(webhook["responses"]) == {"200", "202", "400", "401", "404", "413", "503"}
