"""Prunes of every host of an environment: a real agent on a real engine, asked by the controller.

Images are this test's own (FROM scratch busybox, pushed to the suite's registry, local tags removed)
so that what the host holds is only what its agent pulled by digest, as on a real host.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from controller_fixtures import Harness, controller_settings, running_controller

from shipyard.agent.local_host import LocalHost
from shipyard.agent.loop import AgentLoop
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.host.context import HostContext
from shipyard.host.lock import app_lock
from shipyard.lab.single_host import (
    Registry,
    free_port,
    free_port_pair,
    push_images,
    remove_app_containers,
    stop_haproxy,
    stop_reapers,
    unique_name,
)
from support.images import VARIANTS

pytestmark = pytest.mark.integration
TAGS = ("v1", "v2", "v3")


@pytest.fixture
def sqlite_controller(tmp_path: Path) -> Iterator[Harness]:
    with running_controller(controller_settings(f"sqlite:///{tmp_path / 'controller.db'}")) as running:
        yield running


def pushed_digests(docker_url: str, registry: Registry, name: str) -> tuple[str, dict[str, str]]:
    """Build and push v1..v3; their digests; the local tags removed so only pulled images remain."""
    images = push_images(docker_url, registry, name, {tag: VARIANTS[tag] for tag in TAGS}, recording={})
    client = docker.DockerClient(base_url=docker_url)
    try:
        digests = {}
        for tag in TAGS:
            repo_digests = client.images.get(images.ref(tag)).attrs["RepoDigests"]
            digests[tag] = next(d for d in repo_digests if d.startswith(images.repository + "@")).split("@")[
                1
            ]
        for tag in TAGS:
            client.images.remove(images.ref(tag), force=True)
    finally:
        client.close()
    return images.repository, digests


def test_an_agent_prunes_after_each_deployment_and_again_when_asked_and_reports_it(
    sqlite_controller: Harness,
    docker_url: str,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = unique_name("pr")
    repository, digests = pushed_digests(docker_url, registry, app)
    monkeypatch.setenv("SHIPYARD_SECRET_PRUNE_USER", registry.username)
    monkeypatch.setenv("SHIPYARD_SECRET_PRUNE_PASS", registry.password)
    spec = parse_spec(
        {
            "app": app,
            "image": repository,
            "registry": {
                "username_env": "SHIPYARD_SECRET_PRUNE_USER",
                "password_env": "SHIPYARD_SECRET_PRUNE_PASS",
            },
            "port": free_port_pair(),
            "proxy": {"listen": f"127.0.0.1:{free_port()}"},
            "healthcheck": {"interval": 0.1, "deadline": 8},
            "deploy": {"drain_timeout": 1, "stop_timeout": 2, "keep_releases": 1},
            "rollout": {"monitor": 0.1},
        }
    )
    admin = sqlite_controller.admin
    token = sqlite_controller.add_agent("h1").token
    home = tmp_path / "home"
    context = HostContext(home=home, docker_url=docker_url, actor="agent:h1")
    host = LocalHost(context)
    loop = AgentLoop(sqlite_controller.client(token), host, poll_wait=0.1)
    try:
        for tag in TAGS:
            release = admin.create_release(repository, digests[tag], spec_snapshot(spec))
            deployment = admin.create_deployment(release.id, "production")
            deadline = time.monotonic() + 90
            while (status := admin.get_deployment(deployment.id).status) != "succeeded":
                assert status in ("running", "queued") and time.monotonic() < deadline, status
                loop.run_once()
        pinned = {tag: f"{repository}@{digests[tag]}" for tag in TAGS}
        # The agent pruned after each deployment: after v3's, v1's stopped container (its slot was
        # taken by v3 under another name) and v1's image went; keep_releases 1 keeps the active v3,
        # and v2, the release a rollback returns to.
        assert {c.release_id for c in context.engine.containers(app)} == {"r2", "r3"}
        assert not context.engine.image_present(pinned["v1"])
        assert context.engine.image_present(pinned["v2"]) and context.engine.image_present(pinned["v3"])
        [listed] = admin.hosts("production")
        assert listed.disk_free is not None and listed.disk_free > 0
        final = next(a for a in listed.apps if a.app == app)
        assert (final.outcome, final.health) == ("succeeded", "healthy")

        prune = admin.request_prune(app, "production")
        assert prune.waiting == ["h1"] and prune.hosts == []
        with app_lock(context.lock_dir, app, "test", "a swap"):  # a swap holds the app: no prune yet
            loop.run_once()
        assert admin.get_prune(prune.id).waiting == ["h1"]

        loop.run_once()
        done = admin.get_prune(prune.id)
        assert done.waiting == [] and len(done.hosts) == 1, done
        [result] = done.hosts
        assert result.outcome == "succeeded" and result.removed == []  # the deployments' prunes did it
        assert result.disk_free is not None and result.disk_free > 0
        assert "h1 nothing to remove" in done.summary
        assert {c.release_id for c in context.engine.containers(app)} == {"r2", "r3"}
        assert host.observe(app).active_release is not None and host.observe(app).running

        again = admin.request_prune(app, "production")
        loop.run_once()
        [second] = admin.get_prune(again.id).hosts
        assert second.outcome == "succeeded" and second.removed == []  # nothing listed twice
    finally:
        stop_reapers(home)
        remove_app_containers(docker_url, app)
        stop_haproxy(home)
        context.close()
