"""Secrets in image layers, found by `shipyard scan` and by the scan every `shipyard build` runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_build_support import BASE_DOCKERFILE, AppRepo, git, make_app_repo, pushed

from shipyard.lab.single_host import Registry

pytestmark = pytest.mark.integration

DB_URL = "postgres://web:s3cr3t-pw-4417@db.internal/web"
AWS_KEY = "AKIAZ3MPLE7Q2BUILDX9"
GITHUB_TOKEN = "ghp_" + "R4nd0mT0k3n" * 3 + "abc"
COPY_THEN_DELETE = BASE_DOCKERFILE + "COPY id_rsa /root/.ssh/id_rsa\nRUN rm /root/.ssh/id_rsa\n"
SECRET_MOUNT = BASE_DOCKERFILE + (
    "RUN --mount=type=secret,id=ssh_key,target=/root/.ssh/id_rsa sha256sum /root/.ssh/id_rsa > /key.sha256\n"
)


def openssh_private_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def repo(tmp_path: Path, registry: Registry, docker_url: str) -> Iterator[AppRepo]:
    app = make_app_repo(tmp_path / "app", registry, docker_url)
    yield app
    app.remove_images()


def layer_digests(repo: AppRepo, image: str) -> list[str]:
    client = docker.DockerClient(base_url=repo.docker_url)
    try:
        return list(client.images.get(image).attrs["RootFS"]["Layers"])
    finally:
        client.close()


def test_build_refuses_a_key_copied_then_deleted_and_pushes_nothing(
    repo: AppRepo, registry: Registry
) -> None:
    key = openssh_private_key()
    repo.write("id_rsa", key)
    repo.write("Dockerfile", COPY_THEN_DELETE)
    sha = repo.commit("the classic mistake")

    done = repo.shipyard("build", "--push")

    assert done.returncode == 12
    assert "1 secret found in the layers" in done.stderr and "nothing was pushed" in done.stderr
    assert "private key -----BEGIN OPENSSH PRIVATE KEY----- in layer 1" in done.stderr
    assert "/root/.ssh/id_rsa, made by: COPY id_rsa /root/.ssh/id_rsa" in done.stderr
    assert "deleted in layer 2, but still in the image" in done.stderr
    assert key.splitlines()[1] not in done.stdout + done.stderr
    assert not pushed(registry, f"{repo.image}:{sha}")


def test_scan_reports_layer_digest_path_and_instruction_as_json(repo: AppRepo) -> None:
    repo.write("id_rsa", openssh_private_key())
    repo.write("Dockerfile", COPY_THEN_DELETE)
    repo.write_config(build={"scan": False})
    sha = repo.commit("the classic mistake, unscanned")
    assert repo.shipyard("build").returncode == 0
    image = f"{repo.image}:{sha}"

    done = repo.shipyard("scan", image, "--json")

    assert done.returncode == 12
    report = json.loads(done.stdout)
    assert report["clean"] is False and report["layers"] == 3
    [finding] = report["findings"]
    assert finding["kind"] == "private-key" and finding["path"] == "/root/.ssh/id_rsa"
    assert finding["layer_index"] == 1 and finding["layer_digest"] == layer_digests(repo, image)[1]
    assert finding["instruction"] == "COPY id_rsa /root/.ssh/id_rsa" and finding["deleted_in_layer"] == 2


def test_the_buildkit_secret_way_leaves_no_trace(repo: AppRepo) -> None:
    key = openssh_private_key()
    (repo.root / ".gitignore").write_text("id_rsa\n")
    repo.write("id_rsa", key)  # outside git and never in the context of a commit
    repo.write("Dockerfile", SECRET_MOUNT)
    repo.write_config(build={"secrets": [{"id": "ssh_key", "file": "id_rsa"}]})
    sha = repo.commit("use the key through a secret mount")

    done = repo.shipyard("build", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scan"]["clean"] is True
    scan = repo.shipyard("scan", f"{repo.image}:{sha}")
    assert scan.returncode == 0 and "no secrets found" in scan.stdout


def test_store_values_tokens_and_build_args_are_found_and_masked(repo: AppRepo) -> None:
    repo.set_secret("DATABASE_URL", DB_URL)
    repo.write("config/app.env", f"DATABASE_URL={DB_URL}\nAWS_ACCESS_KEY_ID={AWS_KEY}\nGH={GITHUB_TOKEN}\n")
    repo.write("Dockerfile", BASE_DOCKERFILE + "ARG DB\nCOPY config/ /etc/app/\nRUN echo $DB > /dev/null\n")
    repo.write_config(build={"args": {"DB": DB_URL}})
    repo.commit("secrets in the context")

    done = repo.shipyard("build", "--json")

    assert done.returncode == 12
    output = done.stdout + done.stderr
    assert "value of secret DATABASE_URL in layer 1" in output and "/etc/app/app.env" in output
    assert "AWS access key id AKIA*** in layer 1" in output
    assert "GitHub token ghp_*** in layer 1" in output
    assert "value of secret DATABASE_URL in (image config" in output
    for value in (DB_URL, AWS_KEY, GITHUB_TOKEN, "s3cr3t-pw-4417"):
        assert value not in output


def test_scan_pulls_an_image_the_engine_lacks(repo: AppRepo) -> None:
    sha = git(repo.root, "rev-parse", "HEAD")
    assert repo.shipyard("build", "--push").returncode == 0
    repo.remove_images()

    done = repo.shipyard("scan", f"{repo.image}:{sha}")

    assert done.returncode == 0, done.stderr
    assert f"{repo.image}:{sha}: no secrets found in 1 layers" in done.stdout


def test_scanning_a_missing_image_is_not_found(repo: AppRepo) -> None:
    done = repo.shipyard("scan", f"{repo.image}:no-such-tag")

    assert done.returncode == 3
    assert "not found" in done.stderr and "Traceback" not in done.stderr


def test_a_rebuild_skips_layers_found_clean_until_the_secrets_change(repo: AppRepo) -> None:
    repo.write("config/app.env", f"DATABASE_URL={DB_URL}\n")
    repo.write("Dockerfile", BASE_DOCKERFILE + "COPY config/ /etc/app/\n")
    repo.commit("a value that is no secret yet")
    first = repo.shipyard("build", "--json")
    again = repo.shipyard("build", "--json")
    assert json.loads(first.stdout)["scan"]["layers_known_clean"] == 0
    assert json.loads(again.stdout)["scan"]["layers_known_clean"] == 2

    repo.set_secret("DATABASE_URL", DB_URL)
    done = repo.shipyard("build")

    assert done.returncode == 12
    assert "value of secret DATABASE_URL in layer 1" in done.stderr
