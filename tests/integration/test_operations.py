"""Maintenance, pruning, logs, several apps on one host, secrets in the container env."""

from __future__ import annotations

import json
import time

import docker
import httpx
import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages, unique_name

pytestmark = pytest.mark.integration


def get(home: AppHome, path: str) -> httpx.Response:
    return httpx.get(home.listen_url + path, timeout=5)


def test_stop_shows_the_maintenance_page_and_start_serves_again(
    app_home: AppHome, images: PushedImages
) -> None:
    page = app_home.root / "503.html"
    page.write_text("<h1>back soon</h1>")
    app_home.write_config(images, proxy={"maintenance_page": str(page)})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("stop")
    down = get(app_home, "/version")
    assert down.status_code == 503 and "back soon" in down.text
    assert get(app_home, "/up").status_code == 200  # the upstream load balancer keeps the host
    status = json.loads(app_home.run("status", "--json").stdout)
    assert status["maintenance"] is True
    assert all(c["status"] != "running" for c in status["containers"])
    app_home.run("start")
    assert get(app_home, "/version").text.strip() == "v1"
    assert json.loads(app_home.run("status", "--json").stdout)["maintenance"] is False


def test_maintenance_on_keeps_the_containers_running_shows_the_message_and_off_serves_at_once(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    before = json.loads(app_home.run("status", "--json").stdout)["containers"]
    on = json.loads(app_home.run("maintenance", "on", "--message", "Back at 10:00 <UTC>", "--json").stdout)
    assert on["changed"] is True and on["maintenance"] == "on"
    down = get(app_home, "/version")
    assert down.status_code == 503 and "Back at 10:00 &lt;UTC&gt;" in down.text
    assert get(app_home, "/up").status_code == 200  # the upstream load balancer keeps the host
    status = json.loads(app_home.run("status", "--json").stdout)
    assert status["maintenance"] is True
    assert status["containers"] == before  # the same containers, still running
    app_home.run("maintenance", "off")
    assert get(app_home, "/version").text.strip() == "v1"
    assert json.loads(app_home.run("status", "--json").stdout)["containers"] == before
    app_home.run("stop")  # the message was for that maintenance only: the default page again
    stopped = get(app_home, "/version")
    assert stopped.status_code == 503 and "Back at 10:00" not in stopped.text
    app_home.run("start")


def test_prune_keeps_the_last_releases(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images, deploy={"keep_releases": 2})
    for tag in ("v1", "v2", "v3"):
        app_home.run("deploy", images.ref(tag))
    removed = json.loads(app_home.run("prune", "--json").stdout)["removed"]
    assert any("-r1-" in name for name in removed)
    names = [c["release"] for c in json.loads(app_home.run("status", "--json").stdout)["containers"]]
    assert sorted(names) == ["r2", "r3"]
    assert get(app_home, "/version").text.strip() == "v3"


def test_logs_of_the_active_release(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    get(app_home, "/version")
    out = app_home.run("logs", "--tail", "50").stdout
    assert "response:200" in out


def test_a_second_app_joins_haproxy_without_disturbing_the_first(
    app_home: AppHome, images: PushedImages, docker_url: str, registry: object
) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    other = AppHome(
        root=app_home.root / "other", docker_url=docker_url, registry=app_home.registry, app=unique_name("o")
    )
    other.root.mkdir()
    try:
        other.write_config(images)
        other.environ["SHIPYARD_HOME"] = str(app_home.home)  # same host, same haproxy
        with LoadGenerator(app_home.listen_url + "/version", clients=4) as load:
            other.run("deploy", images.ref("v2"))
            other.run("deploy", images.ref("v3"))
        stats = load.stop()
        assert stats.failed == 0, stats.failures
        assert get(app_home, "/version").text.strip() == "v1"
        assert get(other, "/version").text.strip() == "v3"
        config = (app_home.home / "haproxy" / "haproxy.cfg").read_text()
        assert f"frontend front_{app_home.app}" in config and f"frontend front_{other.app}" in config
    finally:
        other.teardown()


def test_secret_env_reaches_the_container_but_never_the_output(
    app_home: AppHome, images: PushedImages
) -> None:
    secret = "postgres://app:very-secret-pw@127.0.0.1/db"
    app_home.write_config(images, env={"clear": {"MODE": "x"}, "secret": ["DATABASE_URL"]})
    app_home.environ["DATABASE_URL"] = secret
    deployed = app_home.run("deploy", images.ref("v1"), "--json")
    shown = app_home.run("config")
    releases = app_home.run("releases", "--json")
    for output in (deployed.stdout, deployed.stderr, shown.stdout, releases.stdout):
        assert "very-secret-pw" not in output
    assert "DATABASE_URL" in shown.stdout
    client = docker.DockerClient(base_url=app_home.docker_url)
    try:
        (container,) = client.containers.list(filters={"label": f"shipyard.app={app_home.app}"})
        assert f"DATABASE_URL={secret}" in container.attrs["Config"]["Env"]
    finally:
        client.close()


def test_a_missing_secret_is_named_before_anything_changes(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images, env={"secret": ["API_TOKEN"]})
    failed = app_home.run("deploy", images.ref("v1"), check=False)
    assert failed.returncode == 11
    assert "secret API_TOKEN is not set" in failed.stderr
    assert not (app_home.home / "haproxy" / "haproxy.cfg").exists()


def test_init_writes_a_valid_commented_file(app_home: AppHome) -> None:
    app_home.run("init", "--app", "shop", "--image", "127.0.0.1:5000/shop")
    text = app_home.config.read_text()
    assert text.startswith("# shipyard.yml")
    shown = json.loads(app_home.run("config", "--json").stdout)
    assert shown["app"] == "shop" and shown["network"] == "host"
    again = app_home.run("init", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_warm_standby_is_stopped_when_its_time_is_up(app_home: AppHome, images: PushedImages) -> None:
    # Long enough that a loaded machine still finds it running once the deploy has returned.
    app_home.write_config(images, deploy={"standby": 5})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    client = docker.DockerClient(base_url=app_home.docker_url)

    def running() -> set[str]:
        found = client.containers.list(filters={"label": f"shipyard.app={app_home.app}"})
        return {c.labels["shipyard.release"] for c in found}

    try:
        assert running() == {"r1", "r2"}
        deadline = time.monotonic() + 60
        while running() != {"r2"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running() == {"r2"}
    finally:
        client.close()
    assert get(app_home, "/version").text.strip() == "v2"


def test_the_host_log_is_structured_and_masked(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images, env={"secret": ["API_TOKEN"]})
    app_home.environ["API_TOKEN"] = "tok-abcdef-123456"
    app_home.run("deploy", images.ref("v1"))
    lines = [json.loads(line) for line in (app_home.home / "shipyard.log").read_text().splitlines()]
    steps = [line["step"] for line in lines if line["event"] == "step_done"]
    assert any(step.startswith("switch haproxy") for step in steps)
    assert all(line["app"] == app_home.app for line in lines)
    assert "tok-abcdef-123456" not in (app_home.home / "shipyard.log").read_text()


def test_remove_takes_the_app_off_the_host(app_home: AppHome, images: PushedImages, docker_url: str) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))
    refused = app_home.run("remove", app_home.app, check=False)
    assert refused.returncode != 0 and "--yes" in refused.stdout + refused.stderr
    planned = json.loads(app_home.run("remove", app_home.app, "--dry-run", "--json").stdout)["plan"]
    assert planned[0].startswith(f"remove {app_home.app}'s frontend and backend from haproxy (stop haproxy")
    assert planned[-1] == f"forget {app_home.app}'s releases and history on this host"
    assert get(app_home, "/version").text.strip() == "v2"  # the dry run changed nothing
    done = json.loads(app_home.run("remove", app_home.app, "--yes", "--json").stdout)
    assert done["plan"] == planned
    client = docker.DockerClient(base_url=docker_url)
    try:
        assert client.containers.list(all=True, filters={"label": f"shipyard.app={app_home.app}"}) == []
    finally:
        client.close()
    with pytest.raises(httpx.TransportError):
        get(app_home, "/version")
    assert json.loads(app_home.run("releases", "--json").stdout)["releases"] == []
    app_home.run("deploy", images.ref("v1"))  # the app can come back, on the same listen address
    assert get(app_home, "/version").text.strip() == "v1"
