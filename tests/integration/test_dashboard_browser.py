"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a controller served
over https by its CLI command, with fake agents: live progress without reloading, what a viewer sees,
CSRF, and escaping of every user value where a browser would run it. The lab flow is in tests/e2e."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_fixtures import DIGESTS, FakeAgent, ServedController, served_controller, spec
from playwright.sync_api import Browser, Page

from dashboard_browser import chromium, csrf_of, new_page, screenshot, sign_in
from shipyard.controller.store import catalog
from shipyard.controller.store.db import Database
from shipyard.controller.store.pipeline_models import Job, JobLogLine
from shipyard.errors import ControllerError
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.tls import TlsFiles

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def served(tmp_path: Path, controller_tls: TlsFiles) -> Iterator[ServedController]:
    with served_controller(f"sqlite:///{tmp_path / 'controller.db'}", tmp_path, controller_tls) as controller:
        yield controller


class Agents:
    """Fake agents following the desired state in a thread, as real agents would, until stopped."""

    def __init__(self, served: ServedController, admin: ControllerClient, names: list[str], **register: Any):
        self.agents: list[FakeAgent] = []
        for name in names:
            join = admin.create_join_token("production")
            registered = served.client().register_agent(join.token, name, **register)
            client = served.client(registered.agent_token)
            self.agents.append(FakeAgent(name, registered.agent_token, client))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sync(self) -> None:
        for agent in self.agents:
            agent.sync()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.sync()
            except ControllerError:
                continue

    def __enter__(self) -> Agents:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def deploy_and_wait(admin: ControllerClient, agents: Agents, digest: str, **extra: Any) -> int:
    release = admin.create_release("registry:5000/web", digest, {**spec(), **extra})
    deployment = admin.create_deployment(release.id, "production")
    for _ in range(200):
        agents.sync()
        if admin.get_deployment(deployment.id).status == "succeeded":
            return release.id
    raise AssertionError(f"deployment {deployment.id} did not succeed")


def no_script_ran(page: Page) -> bool:
    return bool(page.evaluate("() => window.__pwned === undefined"))


def test_waves_reach_succeeded_live_without_reloading(browser: Browser, served: ServedController) -> None:
    admin = served.client(served.admin_token)
    agents = Agents(served, admin, ["h1", "h2", "h3"], agent_version="1.0")
    deploy_and_wait(admin, agents, DIGESTS[0])
    release = admin.create_release("registry:5000/web", DIGESTS[1], spec(monitor=1.0))
    with new_page(browser, served.url) as page:
        sign_in(page, served.admin_token)
        page.goto("/ui/environments/web/production")
        page.select_option("#release", str(release.id))
        page.click("#deploy")
        page.wait_for_url("**/ui/deployments/*")
        page.evaluate("() => { window.__same_page = true; }")
        assert page.get_attribute("#deployment-status", "data-status") == "running"
        with agents:
            page.wait_for_selector('#deployment-status[data-status="succeeded"]', timeout=60_000)
        assert page.evaluate("() => window.__same_page") is True  # updated in place, never reloaded
        assert page.locator('svg.waves rect[data-outcome="succeeded"]').count() == 3
        screenshot(page, "deployment")


def test_a_viewer_sees_no_buttons_and_a_forged_post_gets_403(
    browser: Browser, served: ServedController
) -> None:
    admin = served.client(served.admin_token)
    agents = Agents(served, admin, ["h1"])
    first = deploy_and_wait(admin, agents, DIGESTS[0])
    deploy_and_wait(admin, agents, DIGESTS[1])
    viewer = admin.create_token("auditor", "viewer")
    with new_page(browser, served.url) as page:
        sign_in(page, viewer.token)
        page.goto("/ui/environments/web/production")
        assert page.locator("main button").count() == 0 and page.locator("main form").count() == 0
        forged = page.request.post(
            "/ui/environments/web/production/deploy",
            form={"csrf_token": csrf_of(page), "release_id": str(first)},
        )
        assert forged.status == 403 and "needs the deployer role" in forged.text()
    assert len(admin.list_deployments()) == 2


def test_a_post_without_the_csrf_token_gets_403(browser: Browser, served: ServedController) -> None:
    admin = served.client(served.admin_token)
    agents = Agents(served, admin, ["h1"])
    deploy_and_wait(admin, agents, DIGESTS[0])
    with new_page(browser, served.url) as page:
        sign_in(page, served.admin_token)
        session_cookie = next(c for c in page.context.cookies() if c["name"] == "shipyard_session")
        assert (
            session_cookie["secure"] and session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
        )
        answer = page.request.post("/ui/environments/web/production/lock", form={"reason": "no token"})
        assert answer.status == 403 and "CSRF token" in answer.text()
    assert admin.locks() == []


def test_values_from_users_and_repositories_never_run(browser: Browser, served: ServedController) -> None:
    admin = served.client(served.admin_token)
    agents = Agents(served, admin, ["h1"], labels={"rack": EVIL}, agent_version=EVIL[:64])
    labels = {"org.opencontainers.image.revision": EVIL, "org.opencontainers.image.description": EVIL}
    deploy_and_wait(admin, agents, DIGESTS[0], labels=labels)
    deploy_and_wait(admin, agents, DIGESTS[1], labels=labels)
    admin.lock("web", "production", EVIL)
    with new_page(browser, served.url) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, served.admin_token)
        for path in ["/ui", "/ui/environments/web/production", "/ui/hosts", "/ui/audit", "/ui/deployments/2"]:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            assert no_script_ran(page), path
            assert page.locator("main img").count() == 0, path
        page.goto("/ui/environments/web/production")
        assert EVIL in page.inner_text("#lock")  # shown as text, exactly as written
        page.goto("/ui/hosts")
        assert f"rack={EVIL}" in page.inner_text("main")
    assert dialogs == []


def test_a_running_jobs_log_grows_on_the_page(
    browser: Browser, served: ServedController, tmp_path: Path
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'controller.db'}")
    with db.transaction() as session:
        app = catalog.ensure_app(session, "web")
        job = Job(
            app_id=app.id,
            environment="production",
            repository="https://git.example/web.git",
            branch="main",
            sha="c" * 40,
            trigger="push",
            status="running",
            step="build",
            created_by="github",
            worker="a builder elsewhere",  # holding its lease: the controller leaves the job running
            lease_until=datetime.now(UTC) + timedelta(hours=1),
        )
        session.add(job)
        session.flush()
        job_id = job.id
        session.add(JobLogLine(job_id=job_id, step="fetch", line=f"fetched {EVIL}"))
    with new_page(browser, served.url) as page:
        sign_in(page, served.admin_token)
        page.goto(f"/ui/jobs/{job_id}")
        page.evaluate("() => { window.__same_page = true; }")
        with db.transaction() as session:
            session.add_all(
                [JobLogLine(job_id=job_id, step="build", line=f"step {n}/3") for n in range(1, 4)]
            )
        page.wait_for_function("() => document.querySelectorAll('#log span').length === 4")
        assert "step 3/3" in page.inner_text("#log") and EVIL in page.inner_text("#log")
        assert page.evaluate("() => window.__same_page") is True and no_script_ran(page)
        page.goto("/ui/jobs")
        screenshot(page, "jobs")
    db.dispose()
