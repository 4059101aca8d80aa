"""Helpers of the build and scan tests (no tests here): an app's git repository and the CLI around it.

Each repository is made by `git init` in a test's tmp_path, holds a Dockerfile `FROM scratch`
with Debian's static busybox, and builds to an image named uniquely in the test registry.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

from shipyard.adapters.registry import Credentials, RegistryClient, parse_image
from shipyard.domain.spec import SecretsSpec
from shipyard.errors import NotFoundError
from shipyard.lab.single_host import Registry, unique_name
from shipyard.lab.testapp import busybox_path
from shipyard.secrets.factory import open_store

GIT = [
    "git",
    "-c",
    "user.email=ci@shipyard.test",
    "-c",
    "user.name=shipyard tests",
    "-c",
    "init.defaultBranch=main",
]
APPLETS = ("sh", "cat", "rm", "echo", "sha256sum", "dd", "mkdir", "ls", "true")
BASE_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run([*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@dataclass
class AppRepo:
    root: Path
    registry: Registry
    docker_url: str
    app: str = field(default_factory=lambda: unique_name("b"))
    master_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def image(self) -> str:
        return f"{self.registry.address}/{self.app}"

    @property
    def config(self) -> Path:
        return self.root / "shipyard.yml"

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def commit(self, message: str = "change") -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.root, "rev-parse", "HEAD")

    def write_config(self, **overrides: Any) -> None:
        document: dict[str, Any] = {
            "app": self.app,
            "image": self.image,
            "registry": {"username_env": "BUILD_TEST_REG_USER", "password_env": "BUILD_TEST_REG_PASS"},
            "build": {},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        self.config.write_text(yaml.safe_dump(document))

    def set_secret(self, name: str, value: str, env: str = "production") -> None:
        store = open_store(SecretsSpec(), self.root, env, environ={"SHIPYARD_MASTER_KEY": self.master_key})
        store.set(name, value)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": self.docker_url,
            "SHIPYARD_MASTER_KEY": self.master_key,
            "BUILD_TEST_REG_USER": self.registry.username,
            "BUILD_TEST_REG_PASS": self.registry.password,
            "XDG_CACHE_HOME": str(self.root.parent / "cache"),  # the scan's clean-layer cache, per test
            **self.environ,
        }

    def shipyard(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "shipyard.cli.main", *args, "--config", str(self.config)]
        return subprocess.run(
            argv, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def remove_images(self) -> None:
        client = docker.DockerClient(base_url=self.docker_url)
        try:
            for image in client.images.list(name=self.image):
                with contextlib.suppress(docker.errors.DockerException):
                    client.images.remove(image.id, force=True)
        finally:
            client.close()


def make_app_repo(
    root: Path, registry: Registry, docker_url: str, dockerfile: str = BASE_DOCKERFILE
) -> AppRepo:
    """A git repository holding a FROM-scratch app, its shipyard.yml, and one commit."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    repo = AppRepo(root=root, registry=registry, docker_url=docker_url)
    bin_dir = root / "rootfs" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(busybox_path(), bin_dir / "busybox")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    repo.write("rootfs/app/version", "v1\n")
    repo.write("Dockerfile", dockerfile)
    repo.write_config()
    repo.commit("initial")
    return repo


def run_in_image(docker_url: str, image: str, *command: str) -> str:
    """The output of a command run in a throw-away container of ``image``."""
    client = docker.DockerClient(base_url=docker_url)
    try:
        output = client.containers.run(image, list(command), remove=True, network_mode="none")
    finally:
        client.close()
    return bytes(output).decode()


def image_labels(docker_url: str, image: str) -> dict[str, str]:
    client = docker.DockerClient(base_url=docker_url)
    try:
        return dict(client.images.get(image).labels or {})
    finally:
        client.close()


def pushed(registry: Registry, reference: str) -> bool:
    client = RegistryClient(
        registry.address, Credentials(registry.username, registry.password), insecure=True
    )
    try:
        client.resolve(parse_image(reference))
        return True
    except NotFoundError:
        return False
    finally:
        client.close()
