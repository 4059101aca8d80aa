"""The dashboard in Chromium against the lab: sign in, see the hosts and the live release, deploy the next
version and watch its waves reach succeeded without reloading, roll back, lock and see a deploy refused
with the lock's reason, and the request rate the agents report from haproxy. Saves the screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from dashboard_browser import chromium, new_page, screenshot, sign_in
from shipyard.cli.fleet_cmd import resolve_digest
from shipyard.domain.spec import load_spec, spec_snapshot
from shipyard.lab import control_plane

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e
NEXT = {"v1": "v2", "v2": "v3", "v3": "v1"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def create_release(lab: Lab, tag: str) -> int:
    """A release of the lab app at `tag`, not deployed: the dashboard deploys it."""
    spec = load_spec(lab.write_config(f"dashboard-{tag}", None, max_parallel="1", monitor=0.5))
    repository, digest = resolve_digest(spec, f"{lab.state.image}:{tag}")
    with lab.client() as client:
        return client.create_release(repository, digest, spec_snapshot(spec)).id


def follow_to_success(page: Page) -> int:
    """On a deployment page just opened by a button: wait for succeeded, updated in place."""
    page.wait_for_url(re.compile(r".*/ui/deployments/\d+$"))
    page.evaluate("() => { window.__same_page = true; }")
    page.wait_for_selector('#deployment-status[data-status="succeeded"]', timeout=120_000)
    assert page.evaluate("() => window.__same_page") is True, "the page reloaded"
    return int(page.url.rsplit("/", 1)[1])


def test_deploy_rollback_and_lock_from_the_dashboard(serving_lab: Lab, browser: Browser) -> None:
    lab = serving_lab
    state = lab.state
    app, environment = state.app.name, state.group
    token = control_plane.admin_token(state) or ""
    before = current_version(lab)
    target = NEXT.get(before, "v1")  # v1 after another module's version
    release_id = create_release(lab, target)
    for _ in range(40):  # traffic through the edge, counted by each host's haproxy
        httpx.get(lab.edge_version_url, timeout=5)
    with new_page(browser, state.controller_url) as page:
        page.goto("/ui/login")
        screenshot(page, "login")
        sign_in(page, token)
        hosts = page.locator("td.cell").first
        assert "hosts converged 3/3" in hosts.inner_text()
        page.goto("/ui/hosts")
        assert page.locator("tr.host").count() == 3
        assert all(f"{app} r" in row.inner_text() for row in page.locator("tr.host").all())
        screenshot(page, "hosts")

        page.goto(f"/ui/environments/{app}/{environment}")
        page.select_option("#release", str(release_id))
        page.click("#deploy")
        deployed = follow_to_success(page)
        screenshot(page, "deployment")
        assert current_version(lab) == target

        page.goto(f"/ui/environments/{app}/{environment}")
        page.click("#rollback")
        rolled_back = follow_to_success(page)
        assert rolled_back > deployed and current_version(lab) == before

        try:
            page.goto(f"/ui/environments/{app}/{environment}")
            page.fill("input[name=reason]", "payments freeze until 18:00")
            page.click("#lock-button")
            assert "payments freeze until 18:00" in page.inner_text("#lock")
            screenshot(page, "environment")
            page.select_option("#release", str(release_id))
            page.click("#deploy")
            assert "payments freeze until 18:00" in page.inner_text("#error")
            assert current_version(lab) == before
        finally:
            with lab.client() as client:
                if client.locks():
                    client.unlock(app, environment)

        def traffic_shown() -> bool:
            page.goto("/ui")
            label = page.get_attribute("svg.sparkline", "aria-label") or ""
            found = re.search(r"last hour: (\d+) requests", label)
            return found is not None and int(found.group(1)) > 0

        wait_for(traffic_shown, 90, "the agents' haproxy counters on the overview", interval=3)
        screenshot(page, "overview")
        page.goto("/ui/audit")
        assert "lock" in page.inner_text("main")
        screenshot(page, "audit")
