"""A real agent on a real engine: the release's sealed secrets reach its container, also after a reboot.

The controller hands the host the envelope; the agent opens it with its --secrets-key-file and keeps the
ciphertext, so a restarted agent starts the serving release again with its values before it polls.
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
from shipyard.domain.spec import SecretsSpec, parse_spec, spec_snapshot
from shipyard.errors import SecretError
from shipyard.host.context import HostContext
from shipyard.lab.ports import free_port
from shipyard.lab.single_host import (
    Registry,
    free_port_pair,
    push_images,
    remove_app_containers,
    stop_haproxy,
    stop_reapers,
    unique_name,
)
from shipyard.secrets.factory import open_store
from shipyard.secrets.local_key import create_key_file
from shipyard.secrets.sealing import seal_secrets
from support.images import VARIANTS

pytestmark = pytest.mark.integration
VALUE = "agent-plaintext-51f0c2"


@pytest.fixture
def sqlite_controller(tmp_path: Path) -> Iterator[Harness]:
    with running_controller(controller_settings(f"sqlite:///{tmp_path / 'controller.db'}")) as running:
        yield running


def value_in_container(docker_url: str, app: str) -> set[str]:
    client = docker.DockerClient(base_url=docker_url)
    try:
        running = client.containers.list(filters={"label": f"shipyard.app={app}"})
        return {c.exec_run(["sh", "-c", 'printf %s "$DATABASE_URL"'])[1].decode() for c in running}
    finally:
        client.close()


def test_sealed_secrets_reach_the_container_and_survive_a_restart(
    sqlite_controller: Harness,
    docker_url: str,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = unique_name("ss")
    images = push_images(docker_url, registry, app, {"v1": VARIANTS["v1"]}, recording={})
    monkeypatch.setenv("SHIPYARD_SECRET_SS_USER", registry.username)
    monkeypatch.setenv("SHIPYARD_SECRET_SS_PASS", registry.password)
    monkeypatch.setenv("DATABASE_URL", "from-the-agents-environment")  # must never be used
    spec = parse_spec(
        {
            "app": app,
            "image": images.repository,
            "registry": {
                "username_env": "SHIPYARD_SECRET_SS_USER",
                "password_env": "SHIPYARD_SECRET_SS_PASS",
            },
            "port": free_port_pair(),
            "proxy": {"listen": f"127.0.0.1:{free_port()}"},
            "healthcheck": {"interval": 0.1, "deadline": 8},
            "deploy": {"drain_timeout": 1, "stop_timeout": 2},
            "rollout": {"monitor": 0.1},
            "env": {"secret": ["DATABASE_URL"]},
        }
    )
    key_file = tmp_path / "production.key"
    create_key_file(key_file)
    store = open_store(SecretsSpec(key_file=str(key_file)), tmp_path / "repo", "production", environ={})
    store.set("DATABASE_URL", VALUE)
    sealed = seal_secrets(spec.env.secret, store, environ={})
    client = docker.DockerClient(base_url=docker_url)
    repo_digests = client.images.get(images.ref("v1")).attrs["RepoDigests"]
    digest = next(d for d in repo_digests if d.startswith(images.repository + "@")).split("@")[1]
    client.close()

    admin = sqlite_controller.admin
    token = sqlite_controller.add_agent("h1").token
    home = tmp_path / "home"
    context = HostContext(home=home, docker_url=docker_url, actor="agent:h1")
    try:
        host = LocalHost(context, secrets_key_file=key_file)
        loop = AgentLoop(sqlite_controller.client(token), host, poll_wait=0.1)
        release = admin.create_release(images.repository, digest, spec_snapshot(spec))
        deployment = admin.create_deployment(release.id, "production", sealed_secrets=sealed)
        deadline = time.monotonic() + 90
        while (status := admin.get_deployment(deployment.id).status) != "succeeded":
            assert status in ("running", "queued") and time.monotonic() < deadline, status
            loop.run_once()
        assert value_in_container(docker_url, app) == {VALUE}

        # A reboot: the container stops; the restarted agent starts it from its own records.
        context.engine.stop(next(c for c in context.engine.containers(app) if c.running).name, timeout=2)
        assert value_in_container(docker_url, app) == set()
        without_key = LocalHost(context)  # an agent started without --secrets-key-file
        with pytest.raises(SecretError, match="--secrets-key-file") as refused:
            without_key.recover(app)
        assert VALUE not in refused.value.message
        restarted = LocalHost(context, secrets_key_file=key_file)
        done = restarted.recover(app)
        assert any("again, which served before" in line for line in done), done
        assert value_in_container(docker_url, app) == {VALUE}
    finally:
        stop_reapers(home)
        remove_app_containers(docker_url, app)
        stop_haproxy(home)
        context.close()
