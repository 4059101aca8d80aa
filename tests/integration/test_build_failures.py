"""How `shipyard build` fails: clearly, with the right exit code, masked, and without pushing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from test_build_support import BASE_DOCKERFILE, AppRepo, git, make_app_repo, pushed

from shipyard.lab.single_host import Registry

pytestmark = pytest.mark.integration

TOKEN = "tok_0b5e2f8d91c34a77"
FAILING_DOCKERFILE = BASE_DOCKERFILE + (
    "RUN --mount=type=secret,id=api_token echo using $(cat /run/secrets/api_token); "
    "echo 'compiler: 3 errors' >&2; exit 3\n"
)


@pytest.fixture
def repo(tmp_path: Path, registry: Registry, docker_url: str) -> Iterator[AppRepo]:
    app = make_app_repo(tmp_path / "app", registry, docker_url)
    yield app
    app.remove_images()


def built_locally(repo: AppRepo, reference: str) -> bool:
    client = docker.DockerClient(base_url=repo.docker_url)
    try:
        client.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def test_a_failing_build_prints_its_masked_log_tail_and_pushes_nothing(
    repo: AppRepo, registry: Registry
) -> None:
    repo.write("Dockerfile", FAILING_DOCKERFILE)
    repo.write_config(build={"secrets": [{"id": "api_token", "env": "API_TOKEN"}]})
    repo.environ["API_TOKEN"] = TOKEN
    sha = repo.commit("broken build")

    done = repo.shipyard("build", "--push")

    assert done.returncode == 8
    assert "error: the build failed" in done.stderr
    assert "compiler: 3 errors" in done.stderr and "exit code: 3" in done.stderr
    assert "using ***" in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not pushed(registry, f"{repo.image}:{sha}")


def test_a_missing_build_secret_is_named_before_anything_is_built(repo: AppRepo) -> None:
    repo.write("Dockerfile", BASE_DOCKERFILE + "RUN --mount=type=secret,id=npm true\n")
    repo.write_config(build={"secrets": [{"id": "npm", "secret": "NPM_TOKEN"}]})
    sha = repo.commit("needs npm")

    done = repo.shipyard("build")

    assert done.returncode == 11
    assert (
        "secret NPM_TOKEN" in done.stderr and "shipyard secrets set NPM_TOKEN --env production" in done.stderr
    )
    assert "building" not in done.stdout
    assert not built_locally(repo, f"{repo.image}:{sha}")


def test_a_refused_registry_password_is_a_clear_error_before_building(
    repo: AppRepo, registry: Registry
) -> None:
    repo.environ["BUILD_TEST_REG_PASS"] = "wrong-password-123"
    sha = git(repo.root, "rev-parse", "HEAD")

    done = repo.shipyard("build", "--push")

    assert done.returncode == 6
    assert f"logging in to the registry {registry.address} as ci failed: the registry refused" in done.stderr
    assert "wrong-password-123" not in done.stdout + done.stderr
    assert not built_locally(repo, f"{repo.image}:{sha}")
    assert not pushed(registry, f"{repo.image}:{sha}")


def test_a_push_without_the_password_set_names_the_variable(repo: AppRepo) -> None:
    repo.environ["BUILD_TEST_REG_PASS"] = ""

    done = repo.shipyard("build", "--push")

    assert done.returncode == 11
    assert "BUILD_TEST_REG_PASS is not set" in done.stderr


def test_not_a_git_repository_is_a_config_error(tmp_path: Path, registry: Registry, docker_url: str) -> None:
    repo = AppRepo(root=tmp_path / "plain", registry=registry, docker_url=docker_url)
    repo.root.mkdir()
    repo.write("Dockerfile", BASE_DOCKERFILE)
    repo.write_config()

    done = repo.shipyard("build")

    assert done.returncode == 2
    assert "is not inside a git repository" in done.stderr


def test_an_unknown_ref_is_a_config_error(repo: AppRepo) -> None:
    done = repo.shipyard("build", "--ref", "release/9.9")

    assert done.returncode == 2
    assert "'release/9.9' is not a commit of the repository" in done.stderr


def test_dirty_and_ref_together_are_refused(repo: AppRepo) -> None:
    done = repo.shipyard("build", "--dirty", "--ref", "HEAD~1")

    assert done.returncode == 2
    assert "cannot be combined with --ref" in done.stderr
