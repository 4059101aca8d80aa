"""The host's policy with the single-host CLI: a refused release changes nothing; hooks keep no secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from shipyard.lab.load import LoadGenerator
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def version(home: AppHome) -> str:
    return httpx.get(home.listen_url + "/version", timeout=5).text.strip()


def containers(home: AppHome) -> list[tuple[str, str]]:
    client = docker.DockerClient(base_url=home.docker_url)
    try:
        found = client.containers.list(all=True, filters={"label": f"shipyard.app={home.app}"})
        return sorted((c.name, c.status) for c in found)
    finally:
        client.close()


def write_policy(home: AppHome, document: dict[str, Any]) -> Path:
    path = home.root / "agent-policy.yml"
    path.write_text(yaml.safe_dump(document))
    home.environ["SHIPYARD_POLICY"] = str(path)
    return path


def history(home: AppHome) -> list[dict[str, Any]]:
    return list(json.loads(home.run("releases", "--json").stdout)["history"])


# The test registry's credentials come from SHIPYARD_TEST_REG_*: the policy lets those through.
TEST_PREFIXES = {"env": {"secret_prefixes": ["SHIPYARD_TEST_REG_", "SHIPYARD_SECRET_"]}}


def test_a_release_the_policy_refuses_changes_nothing(app_home: AppHome, images: PushedImages) -> None:
    write_policy(app_home, TEST_PREFIXES)
    app_home.write_config(images)
    app_home.run("deploy", images.ref("v1"))
    before = (containers(app_home), history(app_home))
    haproxy_config = (app_home.home / "haproxy" / "haproxy.cfg").read_text()
    marker = app_home.root / "hook-ran"
    app_home.environ["SHIPYARD_TOKEN"] = "sya_" + "x" * 40
    app_home.write_config(
        images,
        hooks={"pre-deploy": [f"touch {marker}"]},
        volumes=["/:/host", "/var/run/docker.sock:/var/run/docker.sock"],
        env={"secret": ["SHIPYARD_TOKEN"]},
        proxy={"maintenance_page": "/etc/passwd"},
    )
    with LoadGenerator(app_home.listen_url + "/version", clients=2) as load:
        planned = app_home.run("deploy", images.ref("v2"), "--dry-run", check=False)
        refused = app_home.run("deploy", images.ref("v2"), check=False)
    stats = load.stop()
    assert planned.returncode == 13, planned.stderr
    assert refused.returncode == 13, refused.stderr
    message = " ".join(refused.stderr.split())
    for expected in (
        "hooks.pre-deploy: hooks are off on this host",
        "(rule hooks)",
        "volumes.0: host path / is not allowed",
        "volumes.1: host path /var/run/docker.sock is not allowed",
        "(rule host-paths)",
        "env.secret.0: SHIPYARD_TOKEN holds a shipyard token or key and is never handed over",
        "proxy.maintenance_page: /etc/passwd is not under an allowed directory",
        "nothing was changed",
    ):
        assert expected in message, refused.stderr
    assert "Traceback" not in refused.stderr and "sya_" not in refused.stderr
    assert not marker.exists()
    assert (containers(app_home), history(app_home)) == before
    assert (app_home.home / "haproxy" / "haproxy.cfg").read_text() == haproxy_config
    assert version(app_home) == "v1"
    assert stats.failed == 0 and set(stats.bodies) == {"v1"}


def test_a_rollback_to_a_release_the_policy_now_refuses_is_refused(
    app_home: AppHome, images: PushedImages
) -> None:
    marker = app_home.root / "hook-ran"
    write_policy(app_home, {**TEST_PREFIXES, "hooks": {"allow": True}})
    app_home.write_config(images, hooks={"post-deploy": [f"touch {marker}"]})
    app_home.run("deploy", images.ref("v1"))
    assert marker.exists()
    marker.unlink()
    app_home.write_config(images, hooks={})
    app_home.run("deploy", images.ref("v2"))
    write_policy(app_home, TEST_PREFIXES)  # hooks are off from now on
    refused = app_home.run("rollback", "r1", check=False)
    assert refused.returncode == 13, refused.stderr
    assert "refuses release r1" in refused.stderr and "(rule hooks)" in refused.stderr
    assert not marker.exists()
    assert version(app_home) == "v2"


def test_a_policy_file_named_but_missing_is_one_sentence_and_nothing_runs(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images)
    missing = app_home.root / "no-such-policy.yml"
    failed = app_home.run("deploy", images.ref("v1"), "--policy", str(missing), check=False)
    assert failed.returncode == 2, failed.stderr
    assert f"the policy file {missing} does not exist" in " ".join(failed.stderr.split())
    assert "Traceback" not in failed.stderr
    assert containers(app_home) == []


def test_hooks_never_see_the_deploying_process_tokens(app_home: AppHome, images: PushedImages) -> None:
    write_policy(app_home, {**TEST_PREFIXES, "hooks": {"allow": True}})
    out = app_home.root / "hook.env"
    app_home.environ.update({"SHIPYARD_TOKEN": "sya_" + "t" * 40, "SHIPYARD_JOIN_TOKEN": "syj_" + "j" * 40})
    app_home.write_config(
        images,
        env={"clear": {"GREETING": "hello"}},
        hooks={"post-swap": [f"sh -c 'env > {out}'"]},
    )
    app_home.run("deploy", images.ref("v1"))
    seen = out.read_text()
    assert "sya_" not in seen and "syj_" not in seen and "SHIPYARD_TEST_REG_PASS" not in seen
    assert "GREETING=hello" in seen and "SHIPYARD_RELEASE=r1" in seen
