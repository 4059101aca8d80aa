"""Previews end to end in the lab: GitHub `pull_request` deliveries through the app's hook, the lab's
controller building each PR's head commit, the lab's preview host running it, the edge answering it at
`pr-N.APP.<previews domain>`, while production keeps serving with no failed request.

A preview host is added to the shared lab for the test and removed after it, with the previews settings
(the release carrying them), the hook and the preview environment's secret it added.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg
import pytest
import yaml

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.adapters.preview_databases import preview_database_name
from shipyard.domain.previews import PREVIEW_LABEL, preview_host_name, preview_label_value
from shipyard.domain.spec import load_spec, spec_snapshot
from shipyard.lab.edge import PREVIEWS
from shipyard.lab.fleet import edge_of, lab_add_preview_hosts, lab_remove_preview_hosts
from shipyard.lab.hosts import agent_log
from shipyard.lab.load import LoadGenerator
from shipyard.lab.origin import LabOrigin, git
from shipyard.lab.state import PREVIEW_GROUP, HostRecord, LabState

from .lab_harness import Lab, current_version, wait_for
from .test_pipeline_lab import _remove_built_images, cli

# GitHub-shaped payloads and the suite's PostgreSQL, shared with the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from controller_fixtures import shared_postgres
from github_payloads import pull_request

pytestmark = pytest.mark.e2e

SECRET = "lab-previews-hook-secret-0123456789"
ADMIN_SECRET = "PREVIEW_DB_ADMIN_URL"
TTL = "15s"
LIVE = {"queued", "building", "deploying", "ready"}
# A CGI page of the PR's commits: the name of the database in the DATABASE_URL the preview was handed.
DATABASE_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"db=${DATABASE_URL##*/}\"\n"


SEED = "a row of the template"


def superuser(database: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
    port = shared_postgres().port
    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=database, autocommit=True)


def databases() -> set[str]:
    with superuser() as connection:
        return {str(row[0]) for row in connection.execute("SELECT datname FROM pg_database")}


@contextlib.contextmanager
def preview_role() -> Iterator[tuple[str, str]]:
    """A role with CREATEDB owning a template database; yields the admin URL the controller keeps and
    the template's name."""
    suffix = uuid.uuid4().hex[:8]
    role, password, template = f"pvlab_{suffix}", f"pw-{uuid.uuid4().hex}", f"pvlab_tmpl_{suffix}"
    with superuser() as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
        connection.execute(f"CREATE DATABASE {template} OWNER {role}")
    with superuser(template) as connection:  # closed before any copy: PostgreSQL copies an unused template
        connection.execute("CREATE TABLE seed (note text)")
        connection.execute("INSERT INTO seed VALUES (%s)", (SEED,))
        connection.execute(f"ALTER TABLE seed OWNER TO {role}")
    try:
        yield f"postgresql://{role}:{password}@127.0.0.1:{shared_postgres().port}/postgres", template
    finally:
        with superuser() as connection:
            owned = connection.execute(
                "SELECT datname FROM pg_database d JOIN pg_roles r ON d.datdba = r.oid WHERE r.rolname = %s",
                (role,),
            ).fetchall()
            for (name,) in owned:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f"DROP ROLE IF EXISTS {role}")


class Previews:
    """The test's handle on the previews of the lab app: deliveries, the CLI, what every host runs."""

    def __init__(self, lab: Lab, origin: LabOrigin, state: LabState) -> None:
        self.lab, self.origin, self.state = lab, origin, state
        self.app = state.app.name
        self.repository = origin.bare.as_uri()
        self.shas: dict[int, str] = {}

    def host_name(self, pr: int) -> str:
        return preview_host_name(self.app, pr, self.state.previews_domain)

    def push(self, pr: int, version: str, action: str = "opened") -> dict[str, Any]:
        self.shas[pr] = self.origin.commit_pull_request(pr, version)
        return self.deliver(action, pr)

    def deliver(self, action: str, pr: int) -> dict[str, Any]:
        answer = self.origin.deliver(SECRET, "pull_request", pull_request(action, pr, self.shas[pr]))
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    def cli(self, *args: str) -> str:
        done = self.lab.cli_with({**self.lab.env(), "COLUMNS": "200"}, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def listed(self) -> dict[int, dict[str, Any]]:
        rows = json.loads(self.cli("previews", "--app", self.app, "--all", "--json"))
        return {row["pr"]: row for row in reversed(rows)}  # the newest record of each PR

    def status(self, pr: int) -> str:
        return str(self.listed()[pr]["status"])

    def wait_status(self, pr: int, wanted: set[str], timeout: float = 180) -> dict[str, Any]:
        wait_for(lambda: self.status(pr) in wanted, timeout, f"pr-{pr} to be {'/'.join(sorted(wanted))}", 0.5)
        return self.listed()[pr]

    def wait_ready(self, pr: int) -> dict[str, Any]:
        """The preview once ready; a failed one fails the test with its message, its job's log and the
        tail of every preview host's agent log."""
        shown = self.wait_status(pr, {"ready", "failed"})
        if shown["status"] != "ready":
            job = self.cli("job", str(shown["job_id"])) if shown["job_id"] else "(no job)"
            agents = [
                f"--- {host.name} agent log\n" + "\n".join(agent_log(host).read_text().splitlines()[-40:])
                for host in self.state.hosts_of(PREVIEW_GROUP)
                if agent_log(host).exists()
            ]
            pytest.fail(f"pr-{pr} failed: {shown['message']}\n--- job\n{job}\n" + "\n".join(agents))
        return shown

    def answer(self, pr: int, path: str = "/version") -> httpx.Response:
        return httpx.get(self.state.edge_url + path, headers={"Host": self.host_name(pr)}, timeout=5)

    def labelled(self, pr: int) -> dict[str, list[str]]:
        """What each lab host's engine still holds labelled with the preview: containers and images."""
        value = preview_label_value(self.repository, pr)
        found: dict[str, list[str]] = {}
        for host in self.lab.state.hosts:
            with contextlib.closing(docker.DockerClient(base_url=host.docker_url)) as engine:
                filters = {"label": f"{PREVIEW_LABEL}={value}"}
                names = [c.name for c in engine.containers.list(all=True, filters=filters)]
                names += [str(i.tags or i.id) for i in engine.images.list(filters=filters)]
            if names:
                found[host.name] = names
        return found

    def routes(self, host: HostRecord) -> dict[str, str]:
        """The preview host's haproxy map, as loaded (runtime API `show map`)."""
        haproxy = host.home / "haproxy"
        return HaproxyRuntime(haproxy / "admin.sock").routes(haproxy / "previews.map")

    def gone(self, pr: int, host: HostRecord) -> bool:
        return (
            self.status(pr) == "closed"
            and not self.labelled(pr)
            and self.host_name(pr) not in self.routes(host)
            and preview_database_name(self.app, pr) not in databases()
        )


def set_previews_release(lab: Lab, previews: dict[str, Any] | None) -> None:
    """A release of the app as its latest one, with PREVIEWS as its previews: settings (None: none):
    the controller reads them from the app's latest release; nothing is deployed."""
    with lab.client() as client:
        latest = max(client.list_releases(app=lab.state.app.name), key=lambda release: release.id)
        spec = {key: value for key, value in latest.spec.items() if key != "previews"}
        client.create_release(
            latest.image, latest.digest, {**spec, **({"previews": previews} if previews else {})}
        )


@contextlib.contextmanager
def previews_in_the_lab(lab: Lab, root: Path) -> Iterator[Previews]:
    """One preview host, a hooked origin whose shipyard.yml has previews: (and the release carrying
    it), the preview environment's database secret: all of it undone afterwards."""
    app = lab.state.app.name
    secrets_root = lab.state.path / "controller"
    with preview_role() as (admin_url, template):
        origin = LabOrigin.create(lab.state, root, rollout={"max_parallel": "100%", "monitor": 0.5})
        config = yaml.safe_load((origin.work / "shipyard.yml").read_text())
        config["previews"] = {
            "domain": lab.state.previews_domain,
            "ttl": TTL,
            "max": 3,
            "when_full": "replace-oldest",
            "database": {"postgres": {"template": template, "admin_url_secret": ADMIN_SECRET}},
        }
        (origin.work / "shipyard.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        cgi = origin.work / "rootfs" / "www" / "cgi-bin" / "database"
        cgi.write_text(DATABASE_CGI)
        cgi.chmod(0o755)
        git(origin.work, "add", "-A")
        git(origin.work, "commit", "-qm", "previews, and a page naming the preview's database")
        git(origin.work, "push", "-q", "origin", "HEAD:main")  # the PRs' base
        try:
            stored = lab.cli_with(
                lab.env(),
                *("secrets", "set", ADMIN_SECRET, "--env", "preview"),
                *("-c", str(lab.state.path / "shipyard.yml"), "--repo", str(secrets_root)),
                stdin=admin_url,
            )
            assert stored.returncode == 0, stored.stdout + stored.stderr
            added = cli(lab, "hooks", "add", "github", "--app", app, cwd=origin.work, stdin=SECRET)
            assert added.returncode == 0, added.stdout + added.stderr
            state = lab_add_preview_hosts(lab.root, 1)
            [host] = state.hosts_of(PREVIEW_GROUP)
            edge = edge_of(state)
            wait_for(lambda: edge.servers(PREVIEWS).get(host.name) == "up", 30, "the preview host to be up")
            set_previews_release(lab, spec_snapshot(load_spec(origin.work / "shipyard.yml"))["previews"])
            yield Previews(lab, origin, state)
        finally:
            for pr, row in Previews(lab, origin, lab.state).listed().items():
                if row["status"] in LIVE:
                    lab.cli("preview", "down", "--app", app, "--pr", str(pr))
            set_previews_release(lab, None)  # without previews: the reconciler removes any left
            lab_remove_preview_hosts(lab.root)
            lab.cli("hooks", "rm", "--app", app)
            (secrets_root / ".shipyard" / "secrets" / "preview.enc").unlink(missing_ok=True)
            _remove_built_images(lab.state.image)
    assert lab.state.hosts_of(PREVIEW_GROUP) == []


def test_pull_requests_get_previews_at_the_edge_while_production_serves(
    serving_lab: Lab, tmp_path: Path
) -> None:
    lab = serving_lab
    production = current_version(lab)
    started = time.monotonic()
    with LoadGenerator(lab.edge_version_url, clients=3) as production_load:
        with previews_in_the_lab(lab, tmp_path) as previews:
            [preview_host] = previews.state.hosts_of(PREVIEW_GROUP)
            period = previews.state.preview_reconcile_interval

            # Three PRs at once, each its own content; pinned, so that the 15 s TTL leaves them be.
            for pr in (1, 2, 3):
                assert previews.push(pr, f"pr-{pr}-a")["verdict"] == "accepted"
                previews.cli("preview", "pin", "--app", previews.app, "--pr", str(pr))
            for pr in (1, 2, 3):
                previews.wait_ready(pr)
            for pr in (1, 2, 3):
                answer = previews.answer(pr)
                assert (answer.status_code, answer.text.strip()) == (200, f"pr-{pr}-a")
                assert answer.headers["x-lab-host"] == preview_host.name
                assert previews.host_name(pr) in previews.routes(preview_host)
                assert {name for name in previews.labelled(pr)} == {preview_host.name}
            # Each has its own database, cloned from the template, and was handed its URL.
            for pr in (1, 2, 3):
                database = preview_database_name(previews.app, pr)
                assert database in databases()
                with superuser(database) as connection:  # a copy of the template, rows included
                    assert connection.execute("SELECT note FROM seed").fetchall() == [(SEED,)]
                shown_db = previews.answer(pr, "/cgi-bin/database")
                assert shown_db.text.strip() == f"db={database}", shown_db.text

            # A push to PR 2, under load at its own host name: old then new content, nothing failed.
            with LoadGenerator(
                lab.edge_version_url, clients=3, host_header=previews.host_name(2)
            ) as preview_load:
                assert previews.push(2, "pr-2-b", action="synchronize")["verdict"] == "accepted"
                wait_for(
                    lambda: previews.answer(2).text.strip() == "pr-2-b", 180, "pr-2 at its new commit", 0.5
                )
                time.sleep(0.5)
            assert preview_load.stats.failed == 0, preview_load.stats.failures
            assert set(preview_load.stats.bodies) == {"pr-2-a", "pr-2-b"}, preview_load.stats.bodies
            assert set(preview_load.stats.changes) == {("pr-2-a", "pr-2-b")}, preview_load.stats.changes

            # Closing PR 3: gone from every engine, the host's map and PostgreSQL.
            previews.deliver("closed", 3)
            closed_at = time.monotonic()
            wait_for(lambda: previews.gone(3, preview_host), period + 30, "pr-3 to be gone", 0.25)
            teardown_seconds = time.monotonic() - closed_at
            assert previews.answer(3).status_code == 404
            assert previews.answer(1).text.strip() == "pr-1-a"

            # A PR whose close never arrives (PR 4): pinned while it builds (its 15 s TTL counts from the
            # push), unpinned once it answers; the TTL removes it.
            assert previews.push(4, "pr-4-a")["verdict"] == "accepted"
            previews.cli("preview", "pin", "--app", previews.app, "--pr", "4")
            previews.wait_ready(4)
            assert previews.answer(4).text.strip() == "pr-4-a"
            previews.cli("preview", "pin", "--app", previews.app, "--pr", "4", "--unpin")
            wait_for(lambda: previews.gone(4, preview_host), 15 + period + 60, "pr-4 to expire", 0.5)
            assert "its TTL" in previews.listed()[4]["message"], previews.listed()[4]

            # A close 0.5 s after the open: nothing is left of it, its job is not running.
            opened = previews.push(5, "pr-5-a")
            time.sleep(0.5)
            previews.deliver("closed", 5)
            wait_for(lambda: previews.gone(5, preview_host), period + 60, "pr-5 to be gone", 0.25)
            assert opened["verdict"] == "accepted" and opened["job_id"], opened
            job = wait_for(
                lambda: (
                    (found := previews.origin.job(opened["job_id"]))["status"] not in ("queued", "running")
                    and found
                ),
                60,
                "pr-5's job to end",
            )
            assert job["status"] == "cancelled", job
            time.sleep(period)  # one more pass: a build that finished late must not bring it back
            assert previews.gone(5, preview_host)

            # previews.max 3: PR 6 is the third live one (1 and 2 pinned); PR 7 replaces the oldest
            # unpinned one, 6, then is pinned itself to outlive the TTL.
            assert previews.push(6, "pr-6-a")["verdict"] == "accepted"
            seventh = previews.push(7, "pr-7-a")
            assert seventh["verdict"] == "accepted", seventh
            previews.cli("preview", "pin", "--app", previews.app, "--pr", "7")
            wait_for(lambda: previews.gone(6, preview_host), period + 60, "pr-6 to be replaced", 0.25)
            assert "replaced by pr-7" in previews.listed()[6]["message"], previews.listed()[6]
            previews.wait_ready(7)
            assert previews.answer(7).text.strip() == "pr-7-a"
            assert {pr for pr, row in previews.listed().items() if row["status"] in LIVE} == {1, 2, 7}
            assert previews.answer(1).text.strip() == "pr-1-a" and previews.answer(2).text.strip() == "pr-2-b"
        time.sleep(0.5)  # a few more production requests after the previews left
    runtime = time.monotonic() - started
    print(f"previews in the lab: {runtime:.0f} s, teardown of pr-3 {teardown_seconds:.1f} s")
    assert production_load.stats.failed == 0, production_load.stats.failures
    assert set(production_load.stats.bodies) == {production}, production_load.stats.bodies
    assert current_version(lab) == production
    for pr in range(1, 8):
        assert preview_database_name(lab.state.app.name, pr) not in databases()
