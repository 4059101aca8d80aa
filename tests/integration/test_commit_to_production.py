"""The whole story on one host: commit -> `shipyard build --push` -> `shipyard deploy --ref` -> served."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_build_support import BASE_DOCKERFILE, AppRepo, git, make_app_repo

from shipyard.lab.load import LoadGenerator
from shipyard.lab.ports import free_port
from shipyard.lab.single_host import Registry, free_port_pair, remove_app_containers, stop_haproxy

pytestmark = pytest.mark.integration

WEB_DOCKERFILE = BASE_DOCKERFILE + 'ENTRYPOINT ["/bin/sh", "-c", "exec httpd -f -p $HOST:$PORT -h /app"]\n'


@pytest.fixture
def web_repo(tmp_path: Path, registry: Registry, docker_url: str) -> Iterator[AppRepo]:
    repo = make_app_repo(tmp_path / "web", registry, docker_url, WEB_DOCKERFILE)
    os.symlink("busybox", repo.root / "rootfs" / "bin" / "httpd")
    repo.write("rootfs/app/up", "ok\n")
    repo.write_config(port=free_port_pair(), proxy={"listen": f"127.0.0.1:{free_port()}"})
    repo.commit("serve over http")
    repo.environ["SHIPYARD_HOME"] = str(tmp_path / "host")
    yield repo
    repo.shipyard("stop")
    stop_haproxy(repo.root.parent / "host")
    remove_app_containers(docker_url, repo.app)
    repo.remove_images()


def test_a_commit_goes_to_production_by_its_sha(web_repo: AppRepo) -> None:
    listen = "http://" + json.loads(web_repo.shipyard("config", "--json").stdout)["proxy"]["listen"]
    built = web_repo.shipyard("build", "--push")
    assert built.returncode == 0, built.stderr
    deployed = web_repo.shipyard("deploy", "--ref", "HEAD")
    assert deployed.returncode == 0, deployed.stderr
    sha = git(web_repo.root, "rev-parse", "HEAD")
    assert sha in deployed.stdout
    assert httpx.get(f"{listen}/version", timeout=5).text == "v1\n"

    web_repo.write("rootfs/app/version", "v2\n")
    web_repo.commit("v2")
    assert web_repo.shipyard("build", "--push").returncode == 0
    with LoadGenerator(f"{listen}/version", clients=4) as load:
        assert web_repo.shipyard("deploy", "--ref", "HEAD").returncode == 0
    stats = load.stop()
    assert stats.failed == 0, stats.failures
    assert httpx.get(f"{listen}/version", timeout=5).text == "v2\n"
