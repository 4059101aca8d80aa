"""Previews on the real controller, SQLite and PostgreSQL: pull_request deliveries, the API, the
reconciler, previews.max, the desired state of preview-group hosts, secrets never shown.

The job worker is off here (run_jobs=False), so the builds the deliveries queue can be inspected;
a preview's release is recorded and deployed with the same function the job's deploy step calls
(preview_steps.deploy_release). test_previews_build.py runs a preview's job for real.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from controller_fixtures import ADMIN, DIGESTS, Harness, controller_settings, running_controller, wait_for
from github_payloads import PIPELINES, pull_request, signed
from sqlalchemy import create_engine, text

from shipyard.controller.engine.previews import preview_spec
from shipyard.controller.server.pipeline.preview_steps import (
    NotCurrent,
    deploy_release,
    wait_for_preview_deployment,
)
from shipyard.controller.server.pipeline.steps import JobRun
from shipyard.domain.spec import AppSpec, SecretsSpec, spec_snapshot
from shipyard.files import write_private
from shipyard.secrets.factory import open_store
from shipyard.secrets.sealing import host_provider, open_sealed, seal_secrets

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

SECRET = "a-webhook-secret-0123456789"
REPO = "file:///srv/git/web.git"
SHA = ["%040x" % (0xB0 + i) for i in range(10)]
DOMAIN = "preview.test"
PLAINTEXT = "preview-plaintext-3c1e9f"


class FakeDatabases:
    """Records what the controller asks of the app's preview databases (a PreviewDatabases)."""

    def __init__(self) -> None:
        self.live: dict[int, str] = {}
        self.destroyed: list[int] = []

    def create(self, app: str, pr: int) -> str:
        url = f"postgresql://preview:{PLAINTEXT}@db/{app}_pr_{pr}"
        self.live[pr] = url
        return url

    def destroy(self, app: str, pr: int) -> None:
        self.live.pop(pr, None)
        self.destroyed.append(pr)


@pytest.fixture
def harness(controller_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    master = base64.b64encode(secrets.token_bytes(32)).decode()
    monkeypatch.setenv("SHIPYARD_MASTER_KEY", master)
    settings = controller_settings(
        controller_db_url, run_jobs=False, preview_reconcile_interval=0.3, secrets_root=tmp_path
    )
    with running_controller(settings) as running:
        yield running


@pytest.fixture
def databases(harness: Harness) -> FakeDatabases:
    fake = FakeDatabases()
    seen: list[Any] = []

    def factory(spec: Any, secret: Callable[[str], str]) -> FakeDatabases:
        seen.append(spec)
        return fake

    harness.http.app.state.context.preview_databases = factory  # type: ignore[attr-defined]
    return fake


def base_spec(app: str = "web", **previews: Any) -> dict[str, Any]:
    database = {"postgres": {"template": "web_template", "admin_url_secret": "PREVIEW_ADMIN_URL"}}
    settings = {"domain": DOMAIN, "ttl": "1h", "max": 3, "database": database, **previews}
    return {
        "app": app,
        "image": f"registry:5000/{app}",
        "env": {"secret": ["API_KEY"]},
        "processes": {"worker": {"command": ["sleep", "1000"]}},
        "previews": settings,
        "rollout": {"max_parallel": "1", "max_failed": 0, "monitor": 0.1, "auto_rollback": True},
    }


def release(harness: Harness, spec: dict[str, Any], digest: str = DIGESTS[0]) -> int:
    body = {"image": spec["image"], "digest": digest, "spec": spec}
    answer = harness.http.post("/api/v1/releases", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def add_hook(harness: Harness, app: str = "web") -> None:
    body = {"app": app, "repository": REPO, "secret": SECRET, "pipelines": PIPELINES}
    answer = harness.http.post("/api/v1/hooks", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text


def deliver(
    harness: Harness, payload: dict[str, Any], *, app: str = "web", delivery: str | None = None
) -> Any:
    body, headers = signed(SECRET, "pull_request", payload, delivery)
    answer = harness.http.post(f"/hooks/github/{app}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


def previews(harness: Harness, *query: str) -> list[dict[str, Any]]:
    answer = harness.http.get("/api/v1/previews" + ("?" + "&".join(query) if query else ""), headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def by_pr(harness: Harness, *query: str) -> dict[int, dict[str, Any]]:
    return {row["pr"]: row for row in reversed(previews(harness, *query))}


def job(harness: Harness, job_id: int) -> dict[str, Any]:
    return dict(harness.http.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json())


@pytest.fixture
def web(harness: Harness) -> Harness:
    release(harness, base_spec())
    add_hook(harness)
    return harness


def test_opened_synchronize_closed_reopened(web: Harness) -> None:
    opened = deliver(web, pull_request("opened", 7, SHA[1]), delivery="d-0")
    assert opened["verdict"] == "accepted" and "preview pr-7: building" in opened["detail"]
    first = job(web, opened["job_id"])
    assert first["status"] == "queued" and first["environment"] == "pr-7" and first["sha"] == SHA[1]
    shown = by_pr(web)[7]
    assert shown["status"] == "queued" and shown["host_name"] == f"pr-7.web.{DOMAIN}"
    assert shown["url"] == f"http://pr-7.web.{DOMAIN}/" and shown["preview_app"] == "web-pr-7"
    assert shown["repository"] == REPO and not shown["fork"] and 3500 < shown["ttl_left_seconds"] <= 3600

    # The same delivery again, and the same commit in another delivery: nothing new.
    again = deliver(web, pull_request("opened", 7, SHA[1]), delivery="d-1")
    assert again["verdict"] == "ignored" and "already queued" in again["detail"]
    redelivered = deliver(web, pull_request("opened", 7, SHA[1]), delivery="d-0")
    assert redelivered["verdict"] == "duplicate" and redelivered["job_id"] == opened["job_id"]

    pushed = deliver(web, pull_request("synchronize", 7, SHA[2]))
    assert pushed["job_id"] != opened["job_id"]
    assert job(web, opened["job_id"])["status"] == "cancelled"
    assert by_pr(web)[7]["sha"] == SHA[2]

    closed = deliver(web, pull_request("closed", 7, SHA[2]))
    assert closed["verdict"] == "accepted" and "torn down: pr-7 closed" in closed["detail"]
    assert job(web, pushed["job_id"])["status"] == "cancelled"
    wait_for(lambda: by_pr(web)[7]["status"] == "closed", timeout=30, what="the reconciler to close pr-7")
    assert deliver(web, pull_request("closed", 7, SHA[2]))["verdict"] == "ignored"

    reopened = deliver(web, pull_request("reopened", 7, SHA[2]))
    assert reopened["verdict"] == "accepted"
    rows = [row for row in previews(web) if row["pr"] == 7]
    assert sorted(row["status"] for row in rows) == ["closed", "queued"]

    audit = web.http.get("/api/v1/audit?limit=50", headers=ADMIN).json()
    actions = {entry["action"] for entry in audit}
    assert {"preview.create", "preview.build", "preview.teardown", "preview.closed"} <= actions


def test_a_close_half_a_second_after_open_leaves_nothing(web: Harness) -> None:
    opened = deliver(web, pull_request("opened", 9, SHA[3]))
    deliver(web, pull_request("closed", 9, SHA[3]))
    assert job(web, opened["job_id"])["status"] == "cancelled"
    wait_for(lambda: by_pr(web)[9]["status"] == "closed", timeout=30, what="pr-9 closed")


def test_a_fork_pr_is_marked_and_stacked_prs_are_separate(web: Harness) -> None:
    deliver(web, pull_request("opened", 11, SHA[4], fork=True))
    deliver(web, pull_request("opened", 12, SHA[4]))  # stacked on the same commit: its own preview
    shown = by_pr(web)
    assert shown[11]["fork"] and not shown[12]["fork"]
    deliver(web, pull_request("closed", 11, SHA[4], merged=True))
    wait_for(lambda: by_pr(web)[11]["status"] == "closed", timeout=30, what="pr-11 closed")
    assert by_pr(web)[12]["status"] == "queued"


def test_max_replaces_the_oldest_unpinned_and_pin_keeps_one(web: Harness) -> None:
    for pr in (1, 2, 3):
        deliver(web, pull_request("opened", pr, SHA[pr]))
    pinned = web.http.post("/api/v1/previews/web/1/pin", json={"pinned": True}, headers=ADMIN)
    assert pinned.status_code == 200 and pinned.json()["preview"]["pinned"] is True
    assert pinned.json()["preview"]["ttl_left_seconds"] is None
    fourth = deliver(web, pull_request("opened", 4, SHA[4]))
    assert "preview pr-2 torn down: replaced by pr-4" in fourth["detail"]
    wait_for(lambda: by_pr(web)[2]["status"] == "closed", timeout=30, what="pr-2 replaced")
    assert by_pr(web)[2]["message"].startswith("torn down (replaced by pr-4"), by_pr(web)[2]["message"]
    assert {pr: row["status"] for pr, row in by_pr(web).items() if row["status"] != "closed"} == {
        1: "queued",
        3: "queued",
        4: "queued",
    }


def test_max_with_refuse_refuses_the_next_and_changes_nothing(harness: Harness) -> None:
    release(harness, base_spec(max=1, when_full="refuse"))
    add_hook(harness)
    deliver(harness, pull_request("opened", 1, SHA[1]))
    refused = deliver(harness, pull_request("opened", 2, SHA[2]))
    assert refused["verdict"] == "ignored" and "previews.max is 1" in refused["detail"]
    assert refused["job_id"] is None and list(by_pr(harness)) == [1]
    by_hand = harness.http.post(
        "/api/v1/previews", json={"app": "web", "pr": 2, "ref": SHA[2]}, headers=ADMIN
    )
    assert by_hand.status_code == 409 and "previews.max is 1" in by_hand.json()["detail"]


def test_an_app_without_previews_keeps_ignoring_pull_requests(harness: Harness) -> None:
    spec = base_spec()
    del spec["previews"]
    release(harness, spec)
    add_hook(harness)
    answer = deliver(harness, pull_request("opened", 5, SHA[5]))
    assert answer["verdict"] == "ignored" and "not merged" in answer["detail"]
    assert previews(harness) == []
    refused = harness.http.post(
        "/api/v1/previews", json={"app": "web", "pr": 5, "ref": SHA[5]}, headers=ADMIN
    )
    assert refused.status_code == 422 and "no 'previews:'" in refused.json()["detail"]


def test_the_api_by_hand_and_its_refusals(web: Harness) -> None:
    up = web.http.post("/api/v1/previews", json={"app": "web", "pr": 21, "ref": SHA[6]}, headers=ADMIN)
    assert up.status_code == 200, up.text
    assert up.json()["job_id"] and up.json()["preview"]["repository"] == REPO
    assert job(web, up.json()["job_id"])["trigger"] == "preview up"
    bad = [
        {"app": "web", "pr": 0, "ref": SHA[6]},
        {"app": "web", "pr": 21, "ref": "main"},
        {"app": "Web!", "pr": 21, "ref": SHA[6]},
        {"app": "web", "pr": 21, "ref": SHA[6], "extra": 1},
    ]
    for body in bad:
        answer = web.http.post("/api/v1/previews", json=body, headers=ADMIN)
        assert answer.status_code == 422, body
    unknown = web.http.post("/api/v1/previews", json={"app": "nope", "pr": 1, "ref": SHA[6]}, headers=ADMIN)
    assert unknown.status_code == 404
    assert web.http.delete("/api/v1/previews/web/99", headers=ADMIN).status_code == 404
    assert web.http.post("/api/v1/previews/web/99/pin", json={}, headers=ADMIN).status_code == 409
    viewer = web.admin.create_token("looker", "viewer").token
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    refused = web.http.post(
        "/api/v1/previews", json={"app": "web", "pr": 22, "ref": SHA[6]}, headers=as_viewer
    )
    assert refused.status_code == 403
    assert web.http.get("/api/v1/previews", headers=as_viewer).status_code == 200
    down = web.http.delete("/api/v1/previews/web/21", headers=ADMIN)
    assert down.status_code == 200 and down.json()["preview"]["status"] in ("closing", "closed")
    wait_for(lambda: by_pr(web)[21]["status"] == "closed", timeout=30, what="pr-21 closed")
    assert 21 in by_pr(web, "all=true")


def test_a_lost_close_is_cleaned_up_by_the_ttl(harness: Harness) -> None:
    release(harness, base_spec(ttl="1m"))
    add_hook(harness)
    deliver(harness, pull_request("opened", 31, SHA[7]))
    context = harness.http.app.state.context  # type: ignore[attr-defined]
    later = context.clock() + timedelta(minutes=2)
    context.clock = lambda: later
    wait_for(lambda: by_pr(harness)[31]["status"] == "closed", timeout=30, what="the TTL to remove pr-31")
    assert "TTL" in next(e for e in harness.admin.audit(action="preview.teardown")).detail["reason"]
    # ... and the closed preview still says why it went, once its teardown finished.
    assert by_pr(harness)[31]["message"].startswith("torn down (its TTL"), by_pr(harness)[31]["message"]


def seal_preview_secrets(root: Path, values: dict[str, str]) -> str:
    store = open_store(SecretsSpec(), root, "preview")
    for name, value in values.items():
        store.set(name, value)
    sealed = seal_secrets(list(values), store)
    assert sealed is not None
    return sealed


def test_the_desired_state_of_preview_hosts_holds_the_preview_until_it_goes(
    web: Harness, databases: FakeDatabases, tmp_path: Path, controller_db_url: str
) -> None:
    preview_host = web.add_agent("pv1", group="preview")
    production_host = web.add_agent("prod1", group="production")
    up = web.http.post("/api/v1/previews", json={"app": "web", "pr": 7, "ref": SHA[8]}, headers=ADMIN)
    preview_id = up.json()["preview"]["id"]
    context = web.http.app.state.context  # type: ignore[attr-defined]
    base = AppSpec.model_validate(base_spec())
    assert base.previews is not None
    spec = preview_spec(
        base, app="web", pr=7, repository=REPO, settings=base.previews, fork=False, database=True
    )
    release_id = release(web, spec_snapshot(spec), DIGESTS[1])
    sealed = seal_preview_secrets(
        tmp_path, {"API_KEY": PLAINTEXT, "DATABASE_URL": databases.create("web", 7)}
    )
    deployment_id = deploy_release(
        context, preview_id, SHA[8], base.previews, release_id, sealed, actor="test"
    )
    assert web.deploy_until(deployment_id, {"succeeded"}) == "succeeded"

    desired = preview_host.sync()
    [entry] = [app for app in desired.apps if app.app == "web-pr-7"]
    assert entry.release_id == release_id
    placed = AppSpec.model_validate(entry.spec)
    assert placed.preview is not None and placed.preview.host_name == f"pr-7.web.{DOMAIN}"
    assert placed.preview.pr == 7 and placed.preview.repository == REPO
    assert placed.previews is None and "worker" not in placed.processes
    assert placed.resources == base.previews.resources and placed.env.secret == ["API_KEY", "DATABASE_URL"]
    key_file = tmp_path / "preview.key"
    write_private(key_file, os.environ["SHIPYARD_MASTER_KEY"])
    opened = open_sealed(
        entry.sealed_secrets, env=None, names=placed.env.secret, provider_for=host_provider(key_file)
    )
    assert opened["API_KEY"] == PLAINTEXT and PLAINTEXT in opened["DATABASE_URL"]
    assert all(app.app != "web-pr-7" for app in production_host.sync().apps)

    # Nothing shows the values: not the API's answers, not the audit, not the database in plain text.
    for path in ("/api/v1/previews", "/api/v1/audit?limit=100", f"/api/v1/releases/{release_id}"):
        assert PLAINTEXT not in web.http.get(path, headers=ADMIN).text
    engine = create_engine(controller_db_url)
    with engine.connect() as connection:
        for table in ("previews", "release_secrets", "audit_log", "releases", "jobs"):
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()
            assert PLAINTEXT not in repr(rows), table

    # Down: out of the preview host's desired state at once, then database and secrets gone.
    with engine.begin() as connection:  # the job records a handed database before creating it
        connection.execute(text("UPDATE previews SET database = true WHERE id = :id"), {"id": preview_id})
    down = web.http.delete("/api/v1/previews/web/7", headers=ADMIN)
    assert down.status_code == 200
    assert all(app.app != "web-pr-7" for app in preview_host.sync().apps)
    wait_for(lambda: by_pr(web)[7]["status"] == "closed", timeout=30, what="pr-7 closed")
    assert databases.destroyed == [7] and 7 not in databases.live
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM release_secrets WHERE release_id = :id"), {"id": release_id}
        ).scalar()
    engine.dispose()
    assert left == 0
    assert "database dropped" in by_pr(web)[7]["message"]


def test_a_teardown_aborts_the_preview_deployment_its_hosts_will_never_finish(web: Harness) -> None:
    web.add_agent("pv1", group="preview")  # registered, but never syncs: the deployment stays running
    up = web.http.post("/api/v1/previews", json={"app": "web", "pr": 8, "ref": SHA[9]}, headers=ADMIN)
    base = AppSpec.model_validate(base_spec())
    assert base.previews is not None
    spec = preview_spec(
        base, app="web", pr=8, repository=REPO, settings=base.previews, fork=True, database=False
    )
    release_id = release(web, spec_snapshot(spec), DIGESTS[2])
    context = web.http.app.state.context  # type: ignore[attr-defined]
    deployment_id = deploy_release(
        context, up.json()["preview"]["id"], SHA[9], base.previews, release_id, None, actor="test"
    )
    assert by_pr(web)[8]["status"] == "deploying"
    assert web.http.delete("/api/v1/previews/web/8", headers=ADMIN).status_code == 200
    assert web.admin.get_deployment(deployment_id).status == "aborted"
    wait_for(lambda: by_pr(web)[8]["status"] == "closed", timeout=30, what="pr-8 closed")
    # The preview's job waiting on that deployment ends cancelled, not failed.
    job_input = SimpleNamespace(job_id=1, sha=SHA[9], environment="pr-8")
    run = JobRun(context, job_input, RecordedLog(), lambda: False)  # type: ignore[arg-type]
    with pytest.raises(NotCurrent):
        wait_for_preview_deployment(run, up.json()["preview"]["id"], deployment_id)


class RecordedLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)


def test_a_release_without_previews_makes_the_reconciler_remove_every_preview(web: Harness) -> None:
    deliver(web, pull_request("opened", 41, SHA[1]))
    assert web.http.post("/api/v1/previews/web/41/pin", json={}, headers=ADMIN).status_code == 200
    spec = base_spec()
    del spec["previews"]
    release(web, spec, DIGESTS[3])
    wait_for(lambda: by_pr(web)[41]["status"] == "closed", timeout=30, what="pr-41 removed")
    reason = next(e for e in web.admin.audit(action="preview.teardown")).detail["reason"]
    assert "no longer has previews" in reason
