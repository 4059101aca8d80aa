"""`shipyard build` against the real engine's BuildKit, the real registry and git repositories."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from test_build_support import BASE_DOCKERFILE, AppRepo, git, image_labels, make_app_repo, run_in_image

from shipyard.adapters.registry import Credentials, RegistryClient, parse_image
from shipyard.errors import NotFoundError
from shipyard.lab.single_host import Registry

pytestmark = pytest.mark.integration

TOKEN = "tok_7d3f9a2c4b1e8f60"
SECRET_DOCKERFILE = BASE_DOCKERFILE + (
    "RUN --mount=type=secret,id=api_token sha256sum /run/secrets/api_token > /token.sha256\n"
)


@pytest.fixture
def repo(tmp_path: Path, registry: Registry, docker_url: str) -> Iterator[AppRepo]:
    app = make_app_repo(tmp_path / "app", registry, docker_url)
    yield app
    app.remove_images()


def registry_digest(registry: Registry, reference: str) -> str:
    client = RegistryClient(
        registry.address, Credentials(registry.username, registry.password), insecure=True
    )
    try:
        return client.resolve(parse_image(reference))
    finally:
        client.close()


def test_build_uses_the_commit_not_the_working_tree_and_labels_it(repo: AppRepo) -> None:
    sha = git(repo.root, "rev-parse", "HEAD")
    git(repo.root, "remote", "add", "origin", "https://ci:ghp_notreal@git.example/team/web.git")
    repo.write("rootfs/app/version", "edited, not committed\n")
    repo.write("rootfs/app/untracked", "not in git\n")

    done = repo.shipyard("build", "--tag", "candidate")

    assert done.returncode == 0, done.stderr
    assert f"built {repo.image}:{sha}" in done.stdout
    assert "no secrets found" in done.stdout
    assert run_in_image(repo.docker_url, f"{repo.image}:{sha}", "cat", "/app/version") == "v1\n"
    assert "missing" in run_in_image(
        repo.docker_url, f"{repo.image}:candidate", "sh", "-c", "cat /app/untracked || echo missing"
    )
    labels = image_labels(repo.docker_url, f"{repo.image}:{sha}")
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.source"] == "https://git.example/team/web.git"
    assert labels["org.opencontainers.image.created"].startswith("20")
    assert labels["shipyard.app"] == repo.app


def test_an_older_ref_builds_that_commit(repo: AppRepo) -> None:
    first = git(repo.root, "rev-parse", "HEAD")
    repo.write("rootfs/app/version", "v2\n")
    repo.commit("v2")

    done = repo.shipyard("build", "--ref", "HEAD~1", "--json")

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["commit"] == first and outcome["image"] == f"{repo.image}:{first}"
    assert run_in_image(repo.docker_url, outcome["image"], "cat", "/app/version") == "v1\n"


def test_dirty_builds_the_working_tree_and_says_so_in_the_tag(repo: AppRepo) -> None:
    sha = git(repo.root, "rev-parse", "HEAD")
    repo.write("rootfs/app/version", "work in progress\n")

    done = repo.shipyard("build", "--dirty", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tags"] == [f"{repo.image}:{sha}-dirty"]
    assert (
        run_in_image(repo.docker_url, f"{repo.image}:{sha}-dirty", "cat", "/app/version")
        == "work in progress\n"
    )


def test_push_stores_every_tag_and_the_cache_and_prints_the_digest(repo: AppRepo, registry: Registry) -> None:
    sha = git(repo.root, "rev-parse", "HEAD")

    done = repo.shipyard("build", "--push", "--tag", "stable", "--json")

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["digest"] == registry_digest(registry, f"{repo.image}:{sha}")
    assert outcome["pushed"] == [f"{repo.image}:{sha}", f"{repo.image}:stable", f"{repo.image}:cache"]
    assert registry_digest(registry, f"{repo.image}:stable") == outcome["digest"]
    assert registry.password not in done.stdout + done.stderr


def test_a_build_secret_is_usable_in_run_and_reaches_no_layer(repo: AppRepo) -> None:
    repo.write("Dockerfile", SECRET_DOCKERFILE)
    repo.write_config(build={"secrets": [{"id": "api_token", "secret": "API_TOKEN"}]})
    repo.set_secret("API_TOKEN", TOKEN)
    sha = repo.commit("use a build secret")

    done = repo.shipyard("build", "--push")

    assert done.returncode == 0, done.stderr
    hashed = run_in_image(repo.docker_url, f"{repo.image}:{sha}", "cat", "/token.sha256")
    assert hashed.split()[0] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert "no secrets found" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    saved = _saved_image(repo, f"{repo.image}:{sha}")
    assert TOKEN.encode() not in saved and b"/run/secrets/api_token" not in _files_of(saved)


def _saved_image(repo: AppRepo, image: str) -> bytes:
    client = docker.DockerClient(base_url=repo.docker_url)
    try:
        return b"".join(client.images.get(image).save(named=False))
    finally:
        client.close()


def _files_of(saved: bytes) -> bytes:
    names = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        for member in archive.getmembers():
            if member.name.endswith("layer.tar"):
                handle = archive.extractfile(member)
                assert handle is not None
                with tarfile.open(fileobj=handle) as layer:
                    names += ["/" + name for name in layer.getnames()]
    return "\n".join(names).encode()


def test_nothing_is_pushed_until_asked(repo: AppRepo, registry: Registry) -> None:
    sha = git(repo.root, "rev-parse", "HEAD")

    assert repo.shipyard("build").returncode == 0
    with pytest.raises(NotFoundError):
        registry_digest(registry, f"{repo.image}:{sha}")
