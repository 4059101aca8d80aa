"""The registry layer cache: a fresh engine reuses the layers an earlier build pushed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from test_build_support import BASE_DOCKERFILE, AppRepo, make_app_repo

from shipyard.lab.engine import ExtraEngine, start_extra_engine, stop_extra_engine
from shipyard.lab.single_host import Registry

pytestmark = pytest.mark.integration

# The RUN layer's content differs on every execution, so an equal digest proves it came from the cache.
DOCKERFILE = BASE_DOCKERFILE + (
    "RUN dd if=/dev/urandom of=/blob bs=1k count=256 2>/dev/null && sha256sum /blob > /blob.sha256\n"
    "COPY release.txt /release.txt\n"
)


@pytest.fixture
def fresh_engine() -> Iterator[ExtraEngine]:
    root = Path(tempfile.mkdtemp(prefix="sy-eng-"))  # short: a unix socket path holds 107 bytes at most
    engine = start_extra_engine(root)
    yield engine
    stop_extra_engine(engine)
    shutil.rmtree(root, ignore_errors=True)


def layers(docker_url: str, image: str) -> list[str]:
    client = docker.DockerClient(base_url=docker_url)
    try:
        return list(client.images.get(image).attrs["RootFS"]["Layers"])
    finally:
        client.close()


def test_a_fresh_engine_rebuilds_only_what_changed(
    tmp_path: Path, registry: Registry, docker_url: str, fresh_engine: ExtraEngine
) -> None:
    repo: AppRepo = make_app_repo(tmp_path / "app", registry, docker_url)
    try:
        repo.write("Dockerfile", DOCKERFILE)
        repo.write("release.txt", "v1\n")
        first = repo.commit("expensive layer")
        assert repo.shipyard("build", "--push").returncode == 0
        pushed_layers = layers(docker_url, f"{repo.image}:{first}")
        repo.write("release.txt", "v2\n")
        second = repo.commit("change the last layer")

        repo.docker_url = fresh_engine.base_url
        done = repo.shipyard("build")

        assert done.returncode == 0, done.stderr
        assert "importing cache manifest" not in done.stdout  # the CLI shows steps only
        fresh_layers = layers(fresh_engine.base_url, f"{repo.image}:{second}")
        assert fresh_layers[:2] == pushed_layers[:2]
        assert fresh_layers[2] != pushed_layers[2]
        run_step = next(line for line in done.stdout.splitlines() if "RUN dd" in line).split()[0]
        assert f"{run_step} CACHED" in done.stdout
    finally:
        repo.docker_url = docker_url
        repo.remove_images()
