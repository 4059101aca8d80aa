"""Failure behaviour: a bad release never gets a request, the old one keeps serving, nothing is lost."""

from __future__ import annotations

import json
import socket

import docker
import httpx
import pytest

from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def version(home: AppHome) -> str:
    return httpx.get(home.listen_url + "/version", timeout=5).text.strip()


def running_releases(home: AppHome) -> set[str]:
    client = docker.DockerClient(base_url=home.docker_url)
    try:
        found = client.containers.list(all=True, filters={"label": f"shipyard.app={home.app}"})
        return {c.labels["shipyard.release"] for c in found if c.status == "running"}
    finally:
        client.close()


def all_containers(home: AppHome) -> list[str]:
    client = docker.DockerClient(base_url=home.docker_url)
    try:
        return [
            c.name for c in client.containers.list(all=True, filters={"label": f"shipyard.app={home.app}"})
        ]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("tag", "health", "expected"),
    [
        ("crash", {}, "the container is"),
        ("hang", {"deadline": 2}, "not healthy within 2 s"),
        ("wrong-port", {"deadline": 2}, "not healthy within 2 s"),
        ("v2", {"path": "/cgi-bin/fail", "deadline": 2}, "answered 500"),
    ],
)
def test_a_bad_release_never_serves_and_the_old_one_keeps_serving(
    app_home: AppHome, images: PushedImages, tag: str, health: dict[str, object], expected: str
) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    app_home.write_config(images, healthcheck={"interval": 0.1, "deadline": 8, **health})
    with LoadGenerator(app_home.listen_url + "/version", clients=4) as load:
        failed = app_home.run("deploy", images.ref(tag), check=False)
    stats = load.stop()
    assert failed.returncode == 9, failed.stderr
    assert expected in failed.stderr
    assert "the previous release keeps serving" in failed.stderr
    assert stats.failed == 0 and set(stats.bodies) == {"v1"}
    assert version(app_home) == "v1"
    assert running_releases(app_home) == {"r1"}
    history = json.loads(app_home.run("releases", "--json").stdout)["history"]
    assert history[0]["outcome"] == "failed" and history[0]["release"] == "r2"


def test_a_crashing_release_prints_its_last_log_lines(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    failed = app_home.run("deploy", images.ref("crash"), check=False)
    assert failed.returncode == 9
    assert "fatal: cannot connect to database" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_slow_release_is_waited_for(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images, env={"clear": {"SLOW_START": "2"}})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("slow"))
    assert version(app_home) == "slow"


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        ("unknown-tag", 3, "was not found in the registry"),
        ("bad-password", 6, "refused the credentials"),
        ("registry-down", 6, "is unreachable"),
        ("engine-down", 5, "Docker Engine"),
    ],
)
def test_registry_and_engine_problems_fail_before_anything_changes(
    app_home: AppHome, images: PushedImages, mutate: str, code: int, message: str
) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    before = app_home.run("status", "--json").stdout
    image = images.ref("v2")
    if mutate == "unknown-tag":
        image = images.ref("no-such-tag")
    elif mutate == "bad-password":
        app_home.environ["SHIPYARD_TEST_REG_PASS"] = "wrong-password"
    elif mutate == "registry-down":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            image = f"127.0.0.1:{sock.getsockname()[1]}/{images.repository.split('/', 1)[1]}:v2"
        app_home.write_config(images, image=image.rsplit(":", 1)[0])
    elif mutate == "engine-down":
        app_home.environ["DOCKER_HOST"] = f"unix://{app_home.root}/no-engine.sock"
    failed = app_home.run("deploy", image, check=False)
    assert failed.returncode == code, failed.stdout + failed.stderr
    assert message in failed.stderr
    assert "Traceback" not in failed.stderr
    app_home.environ.clear()
    app_home.write_config(images) if mutate == "registry-down" else None
    assert version(app_home) == "v1"
    assert running_releases(app_home) == {"r1"}
    if mutate != "registry-down":
        assert app_home.run("status", "--json").stdout == before


def test_invalid_config_changes_nothing(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    good = app_home.config.read_text()
    app_home.config.write_text(good + "healthcheck:\n  interval: -1\nbogus: 1\n")
    failed = app_home.run("deploy", images.ref("v2"), check=False)
    assert failed.returncode == 2
    assert "healthcheck.interval: must be greater than 0" in failed.stderr
    assert "bogus: unknown key" in failed.stderr
    app_home.config.write_text(good)
    assert version(app_home) == "v1"


def test_slot_port_taken_by_another_process_is_a_clear_error(app_home: AppHome, images: PushedImages) -> None:
    document = app_home.write_config(images)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(document["port"])))  # type: ignore[call-overload]
        squatter.listen()
        failed = app_home.run("deploy", images.ref("v1"), check=False)
    assert failed.returncode == 2
    assert "is already taken by another process" in failed.stderr
    assert all_containers(app_home) == []


def test_a_failing_pre_deploy_hook_aborts_before_any_change(app_home: AppHome, images: PushedImages) -> None:
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    marker = app_home.root / "hook-ran"
    app_home.write_config(images, hooks={"pre-deploy": ["false"], "post-deploy": [f"touch {marker}"]})
    failed = app_home.run("deploy", images.ref("v2"), check=False)
    assert failed.returncode == 9
    assert "pre-deploy hook 'false' exited with 1" in failed.stderr
    assert not marker.exists()
    assert running_releases(app_home) == {"r1"}


def test_hooks_see_the_release(app_home: AppHome, images: PushedImages) -> None:
    out = app_home.root / "hook.out"
    app_home.write_config(
        images, hooks={"post-swap": [f"sh -c 'echo $SHIPYARD_RELEASE $SHIPYARD_DIGEST > {out}'"]}
    )
    app_home.run("deploy", images.ref("v1"))
    release, digest = out.read_text().split()
    assert release == "r1" and digest.startswith("sha256:")
