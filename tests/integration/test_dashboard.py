"""The dashboard over HTTP against a real controller and database (SQLite and PostgreSQL), fake agents.

Sessions, CSRF, roles and the actions; what the pages show; escaping; live progress over SSE; the traffic
counters agents report. The browser tests are in test_dashboard_browser.py and tests/e2e.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from controller_fixtures import ADMIN_TOKEN, DIGESTS, FakeAgent, Harness, spec
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from shipyard.controller.server.ui.sessions import COOKIE_NAME, UiSession
from shipyard.controller.store.models import ApiToken, Deployment, Lock
from shipyard.fleet_api.schemas.agent import AppReport, TrafficCounters

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
EVIL = '<script>alert("x")</script>'


def sign_in(http: TestClient, token: str) -> str:
    """Signs `http` in; returns the session's CSRF token."""
    form = http.get("/ui/login")
    login_csrf = CSRF.search(form.text)
    assert login_csrf
    answer = http.post(
        "/ui/login",
        data={"token": token, "csrf_token": login_csrf.group(1), "next": "/ui"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = http.get("/ui")
    found = CSRF.search(page.text)
    assert page.status_code == 200 and found
    return found.group(1)


def deployed(harness: Harness, *digests: str, labels: dict[str, str] | None = None) -> list[int]:
    """Releases of `web` deployed one after the other to production; returns their ids."""
    ids = []
    for digest in digests:
        body: dict[str, Any] = {**spec(), "labels": labels or {}}
        release = harness.admin.create_release("registry:5000/web", digest, body)
        deployment = harness.admin.create_deployment(release.id, "production")
        assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
        ids.append(release.id)
    return ids


def context_of(harness: Harness) -> Any:
    return harness.http.app.state.context  # type: ignore[attr-defined]


def test_pages_need_a_session_and_the_cookie_holds_no_token(controller_harness: Harness) -> None:
    http = controller_harness.http
    answer = http.get("/ui/hosts", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login?next=")
    form = http.get("/ui/login")
    login_csrf = CSRF.search(form.text)
    assert login_csrf
    signed = http.post(
        "/ui/login",
        data={"token": ADMIN_TOKEN, "csrf_token": login_csrf.group(1), "next": "/ui/hosts"},
        follow_redirects=False,
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/hosts"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE_NAME))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert ADMIN_TOKEN not in cookie and ADMIN_TOKEN not in http.get("/ui/hosts").text
    with context_of(controller_harness).db.read() as session:  # only a hash of the id is stored
        stored = session.scalars(select(UiSession)).one()
        assert stored.id_hash not in cookie


def test_sign_in_refuses_bad_tokens_and_forged_forms(controller_harness: Harness) -> None:
    http = controller_harness.http
    form = http.get("/ui/login")
    login_csrf = CSRF.search(form.text)
    assert login_csrf
    wrong = http.post("/ui/login", data={"token": "sya_nope", "csrf_token": login_csrf.group(1)})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert "sya_nope" not in wrong.text
    forged = TestClient(http.app).post("/ui/login", data={"token": ADMIN_TOKEN, "csrf_token": "guess"})
    assert forged.status_code == 403 and COOKIE_NAME not in forged.headers.get("set-cookie", "")
    open_redirect = http.get("/ui/login?next=//evil.example/")
    assert 'name="next" value="/ui"' in open_redirect.text


def test_sign_out_revocation_and_expiry_end_the_session(controller_harness: Harness) -> None:
    http = controller_harness.http
    csrf = sign_in(http, ADMIN_TOKEN)
    assert http.post("/ui/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    http.cookies.clear()
    assert http.get("/ui", follow_redirects=False).status_code == 303

    created = controller_harness.admin.create_token("ops", "deployer")
    sign_in(http, created.token)
    revoked = http.delete(f"/api/v1/tokens/{created.id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert revoked.status_code == 204
    assert http.get("/ui", follow_redirects=False).status_code == 303  # revoked: signed out

    http.cookies.clear()
    sign_in(http, ADMIN_TOKEN)
    context = context_of(controller_harness)
    with context.db.transaction() as session:
        session.execute(update(UiSession).values(expires_at=context.now() - timedelta(seconds=1)))
    assert http.get("/ui", follow_redirects=False).status_code == 303


def test_overview_environment_and_hosts_show_the_fleet(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    harness.add_agent("h2")
    labels = {
        "org.opencontainers.image.revision": "abc1234def5678",
        "org.opencontainers.image.description": "fix",
    }
    first, second = deployed(harness, DIGESTS[0], DIGESTS[1], labels=labels)
    harness.admin.lock("web", "production", "release freeze")
    sign_in(harness.http, ADMIN_TOKEN)
    overview = harness.http.get("/ui").text
    assert f"r{second}" in overview and "abc1234def" in overview and "hosts converged 2/2" in overview
    assert f"previous: r{first}" in overview and "Locked by bootstrap-admin: release freeze" in overview
    environment = harness.http.get("/ui/environments/web/production").text
    assert f'<option value="{first}">' in environment and 'class="timeline"' in environment
    assert environment.count('data-status="succeeded"') == 2
    hosts = harness.http.get("/ui/hosts").text
    assert 'data-host="h1"' in hosts and f"web r{second} healthy" in hosts


def test_deploy_rollback_and_lock_from_the_dashboard(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    first, second = deployed(harness, DIGESTS[0], DIGESTS[1])
    http = harness.http
    csrf = sign_in(http, ADMIN_TOKEN)

    rolled = http.post(
        "/ui/environments/web/production/rollback", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert rolled.status_code == 303
    rollback_id = int(rolled.headers["location"].rsplit("/", 1)[1])
    assert harness.deploy_until(rollback_id, {"succeeded"}) == "succeeded"
    assert harness.admin.get_deployment(rollback_id).release_id == first

    locked = http.post(
        "/ui/environments/web/production/lock",
        data={"csrf_token": csrf, "reason": "database migration"},
        follow_redirects=False,
    )
    assert locked.status_code == 303
    assert "Locked by bootstrap-admin: database migration" in http.get("/ui/fragments/overview").text
    assert TestClient(http.app).get("/ui/fragments/overview").status_code == 401
    refused = http.post(
        "/ui/environments/web/production/deploy", data={"csrf_token": csrf, "release_id": str(second)}
    )
    assert refused.status_code == 409 and "database migration" in refused.text
    assert http.post("/ui/environments/web/production/unlock", data={"csrf_token": csrf}).status_code == 200
    again = http.post(
        "/ui/environments/web/production/deploy",
        data={"csrf_token": csrf, "release_id": str(second)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    deployment_id = int(again.headers["location"].rsplit("/", 1)[1])
    paused = http.post(f"/ui/deployments/{deployment_id}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 200 and harness.admin.get_deployment(deployment_id).status == "paused"
    http.post(f"/ui/deployments/{deployment_id}/resume", data={"csrf_token": csrf})
    assert harness.deploy_until(deployment_id, {"succeeded"}) == "succeeded"

    audit = http.get("/ui/audit?action=lock").text
    assert "database migration" in audit and "deployment.create" not in audit.split("<tbody>")[1]


def test_bad_input_gets_one_sentence_and_changes_nothing(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    deployed(harness, DIGESTS[0])
    http = harness.http
    csrf = sign_in(http, ADMIN_TOKEN)
    cases = [
        ("/ui/environments/web/production/deploy", {"release_id": "latest"}, 400, "choose a release"),
        # str.isdigit() takes '²' and int() refuses it: matched as ASCII digits, it is one sentence.
        ("/ui/environments/web/production/deploy", {"release_id": "r²"}, 400, "choose a release"),
        ("/ui/environments/web/production/deploy", {"release_id": "9" * 30}, 400, "choose a release"),
        ("/ui/environments/web/production/deploy", {"release_id": "999"}, 404, "not a release of web"),
        (
            "/ui/environments/web/nowhere/lock",
            {"reason": "x"},
            404,
            "environment &#39;nowhere&#39; is unknown",
        ),
        ("/ui/environments/web/production/lock", {"reason": " "}, 400, "give a reason"),
        ("/ui/deployments/1/explode", {}, 400, "use pause, resume or abort"),
        ("/ui/deployments/999/pause", {}, 404, "deployment 999 does not exist"),
    ]
    for path, data, status, sentence in cases:
        answer = http.post(path, data={"csrf_token": csrf, **data})
        assert answer.status_code == status and sentence in answer.text, (path, answer.text)
        assert "Traceback" not in answer.text
    with context_of(harness).db.read() as session:
        assert session.scalar(select(func.count(Deployment.id))) == 1
        assert session.scalar(select(func.count(Lock.id))) == 0
    assert http.get("/ui/deployments/999").status_code == 404


def test_a_viewer_sees_no_buttons_and_its_posts_are_refused(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    first, _second = deployed(harness, DIGESTS[0], DIGESTS[1])
    viewer = harness.admin.create_token("auditor", "viewer")
    http = harness.http
    csrf = sign_in(http, viewer.token)
    page = http.get("/ui/environments/web/production").text
    assert "<button" in page  # sign-out only
    assert page.count("<button") == 1 and "Sign out" in page
    for path, data in [
        ("/ui/environments/web/production/rollback", {}),
        ("/ui/environments/web/production/deploy", {"release_id": str(first)}),
        ("/ui/environments/web/production/lock", {"reason": "mine"}),
    ]:
        answer = http.post(path, data={"csrf_token": csrf, **data})
        assert answer.status_code == 403 and "needs the deployer role" in answer.text
    with context_of(harness).db.read() as session:
        assert session.scalar(select(func.count(Deployment.id))) == 2
        assert session.scalar(select(func.count(Lock.id))) == 0


def test_posts_without_the_session_csrf_token_are_refused(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    deployed(harness, DIGESTS[0], DIGESTS[1])
    http = harness.http
    sign_in(http, ADMIN_TOKEN)
    for data in [{}, {"csrf_token": "forged"}]:
        answer = http.post("/ui/environments/web/production/rollback", data=data)
        assert answer.status_code == 403 and "CSRF token" in answer.text
    other = TestClient(http.app)
    other_csrf = sign_in(other, ADMIN_TOKEN)  # another session's token does not fit this one
    answer = http.post("/ui/environments/web/production/lock", data={"csrf_token": other_csrf, "reason": "x"})
    assert answer.status_code == 403
    assert harness.admin.locks() == []


def test_every_user_value_is_escaped(controller_harness: Harness) -> None:
    harness = controller_harness
    join = harness.admin.create_join_token("production")
    registered = harness.client(None).register_agent(
        join.token, "h1", labels={"rack": EVIL}, agent_version=EVIL[:64]
    )
    harness.agents.append(FakeAgent("h1", registered.agent_token, harness.client(registered.agent_token)))
    labels = {"org.opencontainers.image.revision": EVIL, "org.opencontainers.image.description": EVIL}
    deployed(harness, DIGESTS[0], labels=labels)
    harness.admin.lock("web", "production", EVIL)
    sign_in(harness.http, ADMIN_TOKEN)
    for path in ["/ui", "/ui/environments/web/production", "/ui/hosts", "/ui/audit", "/ui/deployments/1"]:
        text = harness.http.get(path).text
        assert "<script>alert" not in text, path
    assert "&lt;script&gt;alert" in harness.http.get("/ui/environments/web/production").text
    assert "script-src 'self'" in harness.http.get("/ui").headers["content-security-policy"]


def test_progress_streams_over_server_sent_events(controller_harness: Harness) -> None:
    harness = controller_harness
    harness.add_agent("h1")
    release = harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    deployment = harness.admin.create_deployment(release.id, "production")
    sign_in(harness.http, ADMIN_TOKEN)
    assert harness.deploy_until(deployment.id, {"succeeded"}) == "succeeded"
    with harness.http.stream("GET", f"/ui/deployments/{deployment.id}/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        seen = ""
        for line in events.iter_lines():
            seen += line + "\n"
            if 'data-status="succeeded"' in seen:
                break
    assert "event: progress" in seen
    fragment = harness.http.get(f"/ui/deployments/{deployment.id}/progress").text
    assert 'class="waves"' in fragment and 'data-outcome="succeeded"' in fragment
    anonymous = TestClient(harness.http.app).get(f"/ui/deployments/{deployment.id}/events")
    assert anonymous.status_code == 401


def test_reported_counters_draw_the_sparkline_without_database_writes(controller_harness: Harness) -> None:
    harness = controller_harness
    agent = harness.add_agent("h1")
    deployed(harness, DIGESTS[0])
    base = AppReport(
        app="web", step="done", active_release=1, release=1, health="healthy", outcome="succeeded"
    )
    for requests, errors in [(100, 1), (160, 4), (250, 4)]:
        counted = base.model_copy(
            update={"counters": TrafficCounters(requests=requests, responses_5xx=errors)}
        )
        agent.client.report([counted])
    context = context_of(harness)
    samples = context.traffic.last_hour("web", context.now())
    assert sum(s.requests for s in samples) == 150 and sum(s.errors_5xx for s in samples) == 3
    sign_in(harness.http, ADMIN_TOKEN)
    assert "last hour: 150 requests, 3 5xx" in harness.http.get("/ui").text


def test_static_files_are_served_by_the_controller(controller_harness: Harness) -> None:
    htmx = controller_harness.http.get("/ui/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]
    assert controller_harness.http.get("/ui/static/htmx-ext-sse.js").status_code == 200
    assert controller_harness.http.get("/", follow_redirects=False).headers["location"] == "/ui"
    with context_of(controller_harness).db.read() as session:
        assert session.scalar(select(func.count(ApiToken.id))) == 1
