"""Deploy, rollback, status and releases on a real Docker Engine, haproxy and registry."""

from __future__ import annotations

import json

import docker
import httpx
import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def version(home: AppHome) -> str:
    return httpx.get(home.listen_url + "/version", timeout=5).text.strip()


def status(home: AppHome) -> dict[str, object]:
    return json.loads(home.run("status", "--json").stdout)


def test_deploy_swap_and_rollback_under_load_fail_no_request(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    first = json.loads(app_home.run("deploy", images.ref("v1"), "--json").stdout)
    assert first["changed"] is True
    assert version(app_home) == "v1"
    with (
        LoadGenerator(app_home.listen_url + "/version", clients=6, keep_alive=True) as kept,
        LoadGenerator(app_home.listen_url + "/version", clients=6, keep_alive=False) as fresh,
    ):
        app_home.run("deploy", images.ref("v2"))
        assert version(app_home) == "v2"
        app_home.run("rollback")
        assert version(app_home) == "v1"
    for stats in (kept.stop(), fresh.stop()):
        assert stats.sent > 50
        assert stats.failed == 0, stats.failures
        assert set(stats.bodies) == {"v1", "v2"}


def test_status_and_releases_report_the_truth(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    document = status(app_home)
    active = document["active_release"]
    assert isinstance(active, dict)
    assert active["id"] == "r2" and active["tag"] == "v2" and active["digest"].startswith("sha256:")
    assert document["active_slot"] == "green"
    servers = document["servers"]
    assert isinstance(servers, dict)
    assert servers["green"]["admin"] == "ready" and servers["blue"]["admin"] == "maint"
    assert document["health"] == "up"
    history = json.loads(app_home.run("releases", "--json").stdout)["history"]
    assert [(h["kind"], h["release"], h["outcome"]) for h in history] == [
        ("deploy", "r2", "succeeded"),
        ("deploy", "r1", "succeeded"),
    ]
    assert any("cutover" in step for step in history[0]["steps"])


def test_deploying_the_same_image_again_changes_nothing(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    again = json.loads(app_home.run("deploy", images.ref("v1"), "--json").stdout)
    assert again["changed"] is False
    assert "already active" in again["plan"][0]


def test_dry_run_prints_the_plan_and_changes_nothing(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    before = status(app_home)
    out = app_home.run("deploy", images.ref("v2"), "--dry-run").stdout
    assert "start release r2" in out and "switch haproxy to the green slot from blue" in out
    assert status(app_home) == before
    assert version(app_home) == "v1"


def test_deploy_by_digest(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    digest = json.loads(app_home.run("deploy", images.ref("v1"), "--json").stdout)["digest"]
    app_home.run("deploy", images.ref("v2"))
    out = json.loads(app_home.run("deploy", f"{images.repository}@{digest}", "--json").stdout)
    assert out["release"] == "r1"
    assert version(app_home) == "v1"


def test_rollback_with_a_warm_standby_is_only_the_switch(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images, deploy={"standby": 300})
    app_home.run("deploy", images.ref("v1"))
    with (
        LoadGenerator(app_home.listen_url + "/version", clients=4, keep_alive=True) as kept,
        LoadGenerator(app_home.listen_url + "/version", clients=4, keep_alive=False) as fresh,
        # one-second requests: some are in flight on the old slot at every switch and must finish there
        LoadGenerator(app_home.listen_url + "/cgi-bin/slow", clients=3, keep_alive=False) as slow,
    ):
        deployed = json.loads(app_home.run("deploy", images.ref("v2"), "--json").stdout)
        assert any(line.startswith("take the blue slot out of rotation") for line in deployed["plan"])
        plan = json.loads(app_home.run("rollback", "--json").stdout)["plan"]
        again = json.loads(app_home.run("deploy", images.ref("v2"), "--json").stdout)["plan"]
    assert not any(line.startswith("start") for line in plan + again), "both releases stayed warm"
    assert any(line.startswith("switch haproxy to the blue slot") for line in plan)
    for stats in (kept.stop(), fresh.stop(), slow.stop()):
        assert stats.sent > 3
        assert stats.failed == 0, stats.failures
    assert version(app_home) == "v2"
    running = {c["release"] for c in status(app_home)["containers"] if c["status"] == "running"}  # type: ignore[union-attr]
    assert running == {"r1", "r2"}


def test_rollback_to_a_named_release_needs_no_registry(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    app_home.run("deploy", images.ref("v3"))
    app_home.environ["SHIPYARD_TEST_REG_PASS"] = "wrong"  # the registry would refuse us now
    app_home.run("rollback", "r1")
    assert version(app_home) == "v1"


def test_container_runs_on_host_network_with_port_and_labels(app_home: AppHome, images: PushedImages) -> None:
    document = app_home.write_config(
        images, labels={"team": "shop"}, env={"clear": {"RAILS_ENV": "production"}}
    )
    app_home.run("deploy", images.ref("v1"))
    client = docker.DockerClient(base_url=app_home.docker_url)
    try:
        (container,) = client.containers.list(filters={"label": f"shipyard.app={app_home.app}"})
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["PORT"] == str(document["port"]) and env["HOST"] == "127.0.0.1"
        assert env["RAILS_ENV"] == "production"
        assert container.labels["team"] == "shop" and container.labels["shipyard.release"] == "r1"
    finally:
        client.close()


def test_bridge_network_publishes_the_slot_port_on_loopback_only(
    app_home: AppHome, images: PushedImages
) -> None:
    document = app_home.write_config(images, network="bridge")
    app_home.run("deploy", images.ref("v1"))
    assert version(app_home) == "v1"
    client = docker.DockerClient(base_url=app_home.docker_url)
    try:
        (container,) = client.containers.list(filters={"label": f"shipyard.app={app_home.app}"})
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert bindings == {
            f"{document['port']}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(document["port"])}]
        }
    finally:
        client.close()


def test_a_release_may_move_the_app_to_other_ports(app_home: AppHome, images: PushedImages) -> None:
    from shipyard.lab.single_host import free_port_pair

    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.write_config(images, port=free_port_pair())
    with LoadGenerator(app_home.listen_url + "/version", clients=4) as load:
        app_home.run("deploy", images.ref("v2"))
    stats = load.stop()
    assert stats.failed == 0, stats.failures
    assert version(app_home) == "v2"
