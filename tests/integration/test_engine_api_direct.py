"""The Docker Engine API read directly (no SDK) for a warm-standby rollback: same answers, same errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from shipyard.adapters.docker import DockerEngine
from shipyard.errors import DockerError, NotFoundError
from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration

# Runs the console script's entry in-process, then reports what it loaded.
PROBE = """
import json, sys
from shipyard.cli import entry
try:
    entry.run(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_the_engine_api_answers_as_the_sdk_does_and_a_rollback_never_loads_the_sdk(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images, deploy={"standby": 300})
    app_home.run("deploy", images.ref("v1"))
    app_home.run("deploy", images.ref("v2"))

    engine = DockerEngine(app_home.docker_url)
    sdk = docker.DockerClient(base_url=app_home.docker_url)
    try:
        listed = engine.containers(app_home.app)
        by_sdk = sdk.containers.list(all=True, filters={"label": f"shipyard.app={app_home.app}"})
        assert sorted(listed, key=lambda c: c.name) == sorted(
            (DockerEngine._info(c.attrs) for c in by_sdk), key=lambda c: c.name
        )
        assert {c.release_id for c in listed} == {"r1", "r2"}  # the serving one and the warm standby
        for container in listed:
            assert engine.status(container.name) == (sdk.containers.get(container.name).status, None)
        digests = {
            d.partition("@")[2]
            for image in sdk.images.list(name=images.repository)
            for d in image.attrs.get("RepoDigests") or []
            if d.partition("@")[0] == images.repository
        }
        assert engine.present_digests(images.repository) == frozenset(digests) != frozenset()
        assert engine.present_digests(images.repository + "-none") == frozenset()
        with pytest.raises(
            NotFoundError, match="inspecting container shipyard-none failed: No such container"
        ):
            engine.status("shipyard-none")
        assert engine._client is None  # all of the above without the SDK
    finally:
        sdk.close()
        engine.close()

    rolled = subprocess.run(
        [sys.executable, "-c", PROBE, "rollback", "--config", str(app_home.config)],
        cwd=app_home.root,
        env=app_home.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    *lines, last = rolled.stdout.strip().splitlines()
    document = json.loads(last)
    assert document["code"] == 0, rolled.stdout + rolled.stderr
    assert lines[-1].startswith("rolled back to release r1 ")
    assert any(line.startswith("→ switch haproxy to the blue slot") for line in lines)
    assert not any(line.startswith("→ start") for line in lines)  # the standby was warm
    loaded = [
        m for m in document["modules"] if m.split(".")[0] in ("docker", "requests", "typer", "click", "rich")
    ]
    assert loaded == []


def test_an_engine_that_does_not_answer_is_one_clear_error(tmp_path: Path) -> None:
    for url in (f"unix://{tmp_path}/no-such.sock", "tcp://127.0.0.1:1"):
        with pytest.raises(
            DockerError, match=r"the Docker Engine does not answer .*start dockerd or set DOCKER_HOST"
        ):
            DockerEngine(url)
