"""Previews on one real host (Docker Engine, haproxy): routed by Host through the map, swapped and
removed without a reload of haproxy."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from shipyard.adapters.haproxy import HaproxyRuntime
from shipyard.agent.local_host import LocalHost
from shipyard.domain.preview_host import PreviewSettings
from shipyard.domain.previews import PREVIEW_LABEL, preview_app_name, preview_host_name
from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.host.context import HostContext
from shipyard.host.interpreter import SilentReporter
from shipyard.lab.load import LoadGenerator
from shipyard.lab.ports import free_port, free_port_range
from shipyard.lab.single_host import (
    PushedImages,
    Registry,
    free_port_pair,
    remove_app_containers,
    stop_haproxy,
    stop_reapers,
    unique_name,
)

pytestmark = pytest.mark.integration
DOMAIN = "preview.test"


def digest_of(docker_url: str, images: PushedImages, tag: str) -> str:
    client = docker.DockerClient(base_url=docker_url)
    try:
        repo_digests = client.images.get(images.ref(tag)).attrs["RepoDigests"]
    finally:
        client.close()
    return str(next(d for d in repo_digests if d.startswith(images.repository + "@")).split("@")[1])


def get(listen: str, host: str, path: str = "/version") -> tuple[int, str]:
    address, _, port = listen.rpartition(":")
    connection = http.client.HTTPConnection(address, int(port), timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        connection.close()


def haproxy_worker(home: Path) -> tuple[str, int]:
    """The serving worker's pid and its Uptime in seconds: a reload would start a new worker."""
    info = HaproxyRuntime(home / "haproxy" / "admin.sock").execute("show info")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return fields["Pid"].strip(), int(fields["Uptime_sec"].strip())


class Fleet:
    """The desired state a controller would send this host: production and its previews."""

    def __init__(self, app: str, images: PushedImages, digests: dict[str, str]) -> None:
        self.app, self.images, self.digests = app, images, digests
        self.production = parse_spec(
            {
                "app": app,
                "image": images.repository,
                "registry": {
                    "username_env": "SHIPYARD_SECRET_PV_USER",
                    "password_env": "SHIPYARD_SECRET_PV_PASS",
                },
                "port": free_port_pair(),
                "proxy": {"listen": f"127.0.0.1:{free_port()}"},
                "healthcheck": {"interval": 0.1, "deadline": 8},
                "deploy": {"drain_timeout": 2, "stop_timeout": 2},
            }
        )
        self.releases = 0

    def desired(self, tag: str, pr: int | None = None) -> DesiredApp:
        snapshot: dict[str, Any] = spec_snapshot(self.production)
        if pr is not None:
            snapshot.update(
                app=preview_app_name(self.app, pr),
                preview={
                    "repository": "acme/web",
                    "pr": pr,
                    "host_name": preview_host_name(self.app, pr, DOMAIN),
                },
                resources={"memory": "64m", "cpus": 0.5},
            )
        self.releases += 1
        return DesiredApp(
            app=snapshot["app"],
            release_id=self.releases,
            release=f"r{self.releases}",
            image=self.images.repository,
            digest=self.digests[tag],
            spec=snapshot,
            deployment_id=None,
        )


@pytest.fixture
def preview_host(
    tmp_path: Path, docker_url: str, monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> Iterator[LocalHost]:
    monkeypatch.setenv("SHIPYARD_SECRET_PV_USER", registry.username)
    monkeypatch.setenv("SHIPYARD_SECRET_PV_PASS", registry.password)
    home = tmp_path / "home"
    context = HostContext(home=home, docker_url=docker_url, actor="agent:pv")
    first, last = free_port_range(8)
    settings = PreviewSettings(listen=f"127.0.0.1:{free_port()}", slots=4, first_port=first, last_port=last)
    host = LocalHost(context, previews=settings)
    try:
        yield host
    finally:
        stop_reapers(home)
        for record in context.store.apps():
            remove_app_containers(docker_url, record.app)
        stop_haproxy(home)
        context.close()


def labelled(docker_url: str, value: str) -> list[str]:
    client = docker.DockerClient(base_url=docker_url)
    try:
        found = client.containers.list(all=True, filters={"label": f"{PREVIEW_LABEL}={value}"})
        return [container.name for container in found]
    finally:
        client.close()


def test_two_previews_routed_by_host_swapped_and_removed_without_a_reload(
    preview_host: LocalHost, docker_url: str, images: PushedImages
) -> None:
    app = unique_name("pv")[:20]
    fleet = Fleet(app, images, {tag: digest_of(docker_url, images, tag) for tag in ("v1", "v2", "v3")})
    reporter = SilentReporter()
    production = fleet.desired("v1")
    preview_host.converge(production, reporter)
    one, two = fleet.desired("v1", pr=1), fleet.desired("v2", pr=2)
    preview_host.converge(one, reporter)  # the first preview brings the previews frontend (a reload)
    home = preview_host.context.home
    listen = preview_host.previews.listen
    worker, uptime = haproxy_worker(home)

    preview_host.converge(two, reporter)
    assert get(listen, preview_host_name(app, 1, DOMAIN)) == (200, "v1")
    assert get(listen, preview_host_name(app, 2, DOMAIN).upper() + ":8800") == (200, "v2")
    status, page = get(listen, preview_host_name(app, 3, DOMAIN))
    assert status == 404 and f"pr-3.{app}.{DOMAIN} is not an open preview" in page
    assert get(production.spec["proxy"]["listen"], "anything") == (200, "v1")  # production untouched
    assert labelled(docker_url, "acme/web#1") and labelled(docker_url, "acme/web#2")
    limits = docker.DockerClient(base_url=docker_url).containers.get(labelled(docker_url, "acme/web#2")[0])
    assert limits.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert limits.attrs["HostConfig"]["NanoCpus"] == 500_000_000

    # A push to PR 1: the same health-gated blue/green swap, under load through the map.
    with LoadGenerator(
        f"http://{listen}/version", clients=4, host_header=preview_host_name(app, 1, DOMAIN)
    ) as load:
        preview_host.converge(fleet.desired("v3", pr=1), reporter)
        assert get(listen, preview_host_name(app, 1, DOMAIN)) == (200, "v3")
    stats = load.stop()
    assert stats.sent > 20 and stats.failed == 0, stats.failures
    assert set(stats.bodies) <= {"v1", "v3"} and "v3" in stats.bodies

    # PR 1 closes: its entry leaves the desired state.
    removed = preview_host.teardown_previews([production, two])
    assert [line.split(":")[0] for line in removed] == [preview_app_name(app, 1)]
    assert labelled(docker_url, "acme/web#1") == []
    runtime = HaproxyRuntime(home / "haproxy" / "admin.sock")
    assert preview_host_name(app, 1, DOMAIN) not in runtime.execute(
        f"show map {home / 'haproxy' / 'previews.map'}"
    )
    assert preview_host_name(app, 1, DOMAIN) not in (home / "haproxy" / "previews.map").read_text()
    assert get(listen, preview_host_name(app, 1, DOMAIN))[0] == 404
    assert get(listen, preview_host_name(app, 2, DOMAIN)) == (200, "v2")
    assert preview_host.teardown_previews([production, two]) == []  # idempotent

    # Add, swap and remove all happened on the worker that served before them: no reload.
    after, later = haproxy_worker(home)
    assert after == worker and later >= uptime

    # haproxy dies: started again from its files, it routes the preview as before.
    stop_haproxy(home)
    preview_host.context.proxy.stop()
    assert not preview_host.context.proxy.running()
    preview_host.recover(preview_app_name(app, 2))
    assert get(listen, preview_host_name(app, 2, DOMAIN)) == (200, "v2")

    preview_host.teardown_previews([production])
    assert labelled(docker_url, "acme/web#2") == []
    assert preview_host.context.store.preview_allocations() == []
    assert get(production.spec["proxy"]["listen"], "anything") == (200, "v1")
