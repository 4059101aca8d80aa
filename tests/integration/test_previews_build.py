"""A preview built for real, driven by the CLI: `shipyard preview up` -> a job in `shipyard controller`
fetches the PR's commit from a file:// origin, builds it with BuildKit, pushes it to the test registry,
records a release of APP-pr-N and deploys it to a host of the preview group (a fake agent); a push
redeploys it; `shipyard preview down` takes it off the host and the reconciler closes it.

The preview's secret comes from the controller's store of env preview and reaches the host sealed:
the host opens it with the preview environment's key; the controller's log, its database and the
API's answers never hold the value.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_fixtures import FakeAgent, shared_postgres, wait_for
from github_payloads import pull_request, signed
from sqlalchemy import create_engine, text
from test_build_support import AppRepo, git, make_app_repo
from test_preview_databases import database_names, superuser

from shipyard.adapters.preview_databases import preview_database_name
from shipyard.domain.spec import SecretsSpec, load_spec, spec_snapshot
from shipyard.errors import ControllerError
from shipyard.files import write_private
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.ports import free_port
from shipyard.lab.single_host import Registry
from shipyard.secrets.factory import open_store
from shipyard.secrets.sealing import host_provider, open_sealed

pytestmark = pytest.mark.integration

RUN_CONTROLLER = "import typer; from shipyard.cli.controller_cmd import controller; typer.run(controller)"
PLAINTEXT = "preview-api-key-plaintext-51d0"
DOMAIN = "preview.test"
SHA_DIGEST = "sha256:" + "e" * 64
HOOK_SECRET = "previews-build-hook-secret-0123"
ADMIN_SECRET = "PREVIEW_DB_ADMIN_URL"


def shipyard(repo: AppRepo, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "shipyard.cli.main", *args]
    return subprocess.run(argv, cwd=repo.root, env=env, capture_output=True, text=True, timeout=120)


def previews(repo: AppRepo, env: dict[str, str]) -> dict[int, dict[str, Any]]:
    done = shipyard(repo, env, "previews", "--app", repo.app, "--all", "--json")
    assert done.returncode == 0, done.stderr
    return {row["pr"]: row for row in reversed(json.loads(done.stdout))}


@pytest.fixture
def database_url() -> Iterator[str]:
    """PostgreSQL, as a fleet's controller runs on (test_previews_controller covers SQLite too): its
    tables are searched for the secret at the end."""
    server = shared_postgres()
    url = server.create_database("previews_build")
    yield url
    server.drop_database(url)


@dataclass
class PreviewPostgres:
    """A role and a template database of the suite's PostgreSQL for the app's preview databases."""

    role: str
    password: str
    template: str

    def url(self, database: str = "postgres") -> str:
        port = shared_postgres().port
        return f"postgresql://{self.role}:{self.password}@127.0.0.1:{port}/{database}"


@pytest.fixture
def preview_postgres() -> Iterator[PreviewPostgres]:
    server, suffix = shared_postgres(), uuid.uuid4().hex[:8]
    found = PreviewPostgres(f"pvbuild_{suffix}", f"pw-{uuid.uuid4().hex}", f"pvtmpl_{suffix}")
    with superuser(server) as connection:
        connection.execute(f"CREATE ROLE {found.role} LOGIN CREATEDB PASSWORD '{found.password}'")
        connection.execute(f"CREATE DATABASE {found.template} OWNER {found.role}")
    yield found
    with superuser(server) as connection:
        for (name,) in connection.execute(
            "SELECT datname FROM pg_database d JOIN pg_roles r ON d.datdba = r.oid WHERE r.rolname = %s",
            (found.role,),
        ).fetchall():
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f"DROP ROLE IF EXISTS {found.role}")


@pytest.fixture
def served(
    tmp_path: Path, registry: Registry, docker_url: str, database_url: str, preview_postgres: PreviewPostgres
) -> Iterator[tuple[AppRepo, str, Path]]:
    repo = make_app_repo(tmp_path / "web", registry, docker_url)
    origin = tmp_path / "web.git"
    database = {"postgres": {"template": preview_postgres.template, "admin_url_secret": ADMIN_SECRET}}
    repo.write_config(
        repository=origin.as_uri(),
        previews={"domain": DOMAIN, "ttl": "1h", "max": 3, "database": database},
        env={"secret": ["API_KEY"]},
        rollout={"monitor": 0.1},
    )
    repo.commit("previews")
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.root), str(origin)], check=True)
    git(repo.root, "remote", "add", "origin", origin.as_uri())
    home = tmp_path / "home"
    home.mkdir()
    environ = {"SHIPYARD_MASTER_KEY": repo.master_key}
    preview_store = open_store(SecretsSpec(), home, "preview", environ=environ)
    preview_store.set("API_KEY", PLAINTEXT)
    preview_store.set(ADMIN_SECRET, preview_postgres.url())
    port, token_file = free_port(), tmp_path / "admin.token"
    command = [sys.executable, "-c", RUN_CONTROLLER, "--db", database_url]
    command += ["--port", str(port), "--bootstrap-token-file", str(token_file)]
    command += ["--preview-reconcile-interval", "1"]
    env = {**repo.env(), "SHIPYARD_ADMIN_TOKEN": "", "SHIPYARD_HOME": str(home)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: process.poll() is None and _answers(url), timeout=60, what="the controller")
        yield repo, url, token_file
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=5)
        repo.remove_images()
        logged = "".join(output)
        assert PLAINTEXT not in logged and registry.password not in logged, "secrets must never be logged"
        engine = create_engine(database_url)
        with engine.connect() as connection:
            for table in ("previews", "release_secrets", "audit_log", "releases", "jobs", "job_log"):
                rows = connection.execute(text(f"SELECT * FROM {table}")).all()
                assert PLAINTEXT not in repr(rows), table
        engine.dispose()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_preview_up_builds_deploys_redeploys_and_down_removes_it(
    served: tuple[AppRepo, str, Path], tmp_path: Path
) -> None:
    server = shared_postgres()
    repo, url, token_file = served
    token = token_file.read_text().strip()
    admin = ControllerClient(url, token)
    # The app's latest release carries its previews: settings (as a pipeline's release would).
    spec = spec_snapshot(load_spec(repo.config))
    body = {"image": repo.image, "digest": SHA_DIGEST, "spec": spec}
    created = httpx.post(f"{url}/api/v1/releases", json=body, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    joined = ControllerClient(url).register_agent(admin.create_join_token("preview").token, "pv1")
    host = FakeAgent("pv1", joined.agent_token, ControllerClient(url, joined.agent_token))
    stop = threading.Event()

    def sync() -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(ControllerError):
                host.sync()

    syncing = threading.Thread(target=sync, daemon=True)
    syncing.start()
    env = {**os.environ, "SHIPYARD_CONTROLLER": url, "SHIPYARD_TOKEN": token, "COLUMNS": "200"}
    preview_app = f"{repo.app}-pr-3"
    try:
        first = git(repo.root, "rev-parse", "HEAD")
        up = shipyard(repo, env, "preview", "up", "--app", repo.app, "--pr", "3", "--ref", first)
        assert up.returncode == 0, up.stderr
        assert "preview pr-3: building" in up.stdout and f"pr-3.{repo.app}.{DOMAIN}" in up.stdout
        wait_for(lambda: previews(repo, env)[3]["status"] in ("ready", "failed"), timeout=300, what="pr-3")
        shown = previews(repo, env)[3]
        assert shown["status"] == "ready", shown["message"]
        first_release = shown["release_id"]

        desired = host.client.desired()
        [entry] = [app for app in desired.apps if app.app == preview_app]
        assert entry.release_id == first_release and entry.spec["preview"]["pr"] == 3
        assert entry.spec["preview"]["host_name"] == f"pr-3.{repo.app}.{DOMAIN}"
        key_file = tmp_path / "preview.key"
        write_private(key_file, repo.master_key)
        assert entry.spec["env"]["secret"] == ["API_KEY", "DATABASE_URL"]
        opened = open_sealed(
            entry.sealed_secrets,
            env=None,
            names=["API_KEY", "DATABASE_URL"],
            provider_for=host_provider(key_file),
        )
        database = preview_database_name(repo.app, 3)
        assert opened["API_KEY"] == PLAINTEXT and opened["DATABASE_URL"].endswith(f"/{database}")
        assert database in database_names(server)  # cloned from the template, checked in PostgreSQL

        # A push to the PR: a new release, swapped in by a new deployment.
        repo.write("rootfs/app/version", "v2\n")
        second = repo.commit("v2")
        git(repo.root, "push", "-q", "origin", "HEAD:refs/heads/feature")
        again = shipyard(repo, env, "preview", "up", "--app", repo.app, "--pr", "3", "--ref", second)
        assert again.returncode == 0, again.stderr
        wait_for(
            lambda: previews(repo, env)[3]["sha"] == second and previews(repo, env)[3]["status"] == "ready",
            timeout=300,
            what="pr-3 at its second commit",
        )
        assert previews(repo, env)[3]["release_id"] != first_release
        listed = shipyard(repo, env, "previews", "--app", repo.app)
        assert listed.returncode == 0 and second[:12] in listed.stdout and "ready" in listed.stdout

        # A fork's PR through the webhook: built and deployed, with no secret at all.
        hook = {"app": repo.app, "repository": repo.config.parent.as_uri(), "secret": HOOK_SECRET}
        hook["pipelines"] = [{"branch": "release", "environment": "production"}]
        added = httpx.post(f"{url}/api/v1/hooks", json=hook, headers={"Authorization": f"Bearer {token}"})
        assert added.status_code == 201, added.text
        body, headers = signed(HOOK_SECRET, "pull_request", pull_request("opened", 4, second, fork=True))
        delivered = httpx.post(f"{url}/hooks/github/{repo.app}", content=body, headers=headers)
        assert delivered.status_code == 202 and delivered.json()["verdict"] == "accepted", delivered.text
        wait_for(lambda: previews(repo, env)[4]["status"] in ("ready", "failed"), timeout=300, what="pr-4")
        fork = previews(repo, env)[4]
        assert fork["status"] == "ready" and fork["fork"], fork["message"]
        [forked] = [app for app in host.client.desired().apps if app.app == f"{repo.app}-pr-4"]
        assert forked.sealed_secrets is None and forked.spec["env"].get("secret", []) == []
        assert preview_database_name(repo.app, 4) not in database_names(server)  # a fork: no database

        # A close while the preview is being built: the build stops, nothing of it reaches the host.
        body, headers = signed(HOOK_SECRET, "pull_request", pull_request("opened", 5, first))
        opened = httpx.post(f"{url}/hooks/github/{repo.app}", content=body, headers=headers).json()
        wait_for(lambda: previews(repo, env)[5]["status"] != "queued", timeout=120, what="pr-5 building")
        body, headers = signed(HOOK_SECRET, "pull_request", pull_request("closed", 5, first))
        assert httpx.post(f"{url}/hooks/github/{repo.app}", content=body, headers=headers).status_code == 202
        wait_for(lambda: previews(repo, env)[5]["status"] == "closed", timeout=60, what="pr-5 closed")

        def job() -> dict[str, Any]:
            answer = httpx.get(
                f"{url}/api/v1/jobs/{opened['job_id']}", headers={"Authorization": f"Bearer {token}"}
            )
            return dict(answer.json())

        wait_for(lambda: job()["status"] not in ("queued", "running"), timeout=120, what="pr-5's job to end")
        ended = job()
        assert ended["status"] == "cancelled", ended["message"]
        assert all(app.app != f"{repo.app}-pr-5" for app in host.client.desired().apps)

        down = shipyard(repo, env, "preview", "down", "--app", repo.app, "--pr", "3")
        assert down.returncode == 0, down.stderr
        wait_for(
            lambda: all(app.app != preview_app for app in host.client.desired().apps),
            timeout=30,
            what="the preview to leave the host's desired state",
        )
        wait_for(lambda: previews(repo, env)[3]["status"] == "closed", timeout=30, what="pr-3 closed")
        assert database not in database_names(server)  # dropped by the teardown
        assert "database dropped" in previews(repo, env)[3]["message"]
        gone = shipyard(repo, env, "preview", "down", "--app", repo.app, "--pr", "3")
        assert gone.returncode != 0 and "no live preview" in gone.stderr
        for path in ("/api/v1/previews?all=true", "/api/v1/audit?limit=200", "/api/v1/jobs"):
            answer = httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {token}"})
            assert PLAINTEXT not in answer.text
    finally:
        stop.set()
        syncing.join(timeout=5)
