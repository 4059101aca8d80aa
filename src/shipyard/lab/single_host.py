"""One simulated host on this machine, for the demo and the benchmarks: a SHIPYARD_HOME, a shipyard.yml and
the CLI around them, with the Docker Engine and the registry (htpasswd auth on 127.0.0.1) it deploys from.

Images are pushed under names unique to this run so leftovers of earlier runs never collide.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import yaml

from shipyard.lab.engine import ensure_default_engine
from shipyard.lab.ports import free_port, free_port_pair
from shipyard.lab.recording_app import build_recording_image
from shipyard.lab.registry_server import RegistryServer, start_registry
from shipyard.lab.server_image import build_server_image
from shipyard.lab.testapp import Behaviour, build_test_image


@dataclass
class Registry:
    server: RegistryServer
    username: str
    password: str

    @property
    def address(self) -> str:
        return self.server.address

    def auth(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


@dataclass
class PushedImages:
    repository: str
    tags: dict[str, str] = field(default_factory=dict)

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


def start_engine(work: Path) -> str:
    return ensure_default_engine(work / "engine")


def start_local_registry(work: Path) -> Registry:
    password = secrets.token_urlsafe(12)
    server = start_registry(work / "registry", username="ci", password=password)
    return Registry(server=server, username="ci", password=password)


def push_images(
    docker_url: str,
    registry: Registry,
    name: str,
    variants: dict[str, tuple[str, Behaviour]],
    recording: dict[str, str] | None = None,
) -> PushedImages:
    """Build and push the busybox variants (tag -> version, behaviour) and the recording app's tags
    (recording_app.py, tag -> version)."""
    client = docker.DockerClient(base_url=docker_url)
    images = PushedImages(repository=f"{registry.address}/{name}")
    try:
        for tag, (version, behaviour) in variants.items():
            build_test_image(client, images.ref(tag), version, behaviour)
            _push(client, registry, images, tag)
        for tag, version in (recording or {}).items():
            build_recording_image(docker_url, images.ref(tag), version)
            _push(client, registry, images, tag)
    finally:
        client.close()
    return images


def _push(client: docker.DockerClient, registry: Registry, images: PushedImages, tag: str) -> None:
    for event in client.api.push(
        images.repository, tag=tag, stream=True, decode=True, auth_config=registry.auth()
    ):
        if "error" in event:
            raise RuntimeError(f"push of {images.ref(tag)} failed: {event['error']}")
    images.tags[tag] = images.ref(tag)


def push_server_images(
    docker_url: str, registry: Registry, name: str, versions: tuple[str, ...]
) -> PushedImages:
    """The lighttpd test image (server_image.py), one tag per version, pushed like push_images."""
    client = docker.DockerClient(base_url=docker_url)
    images = PushedImages(repository=f"{registry.address}/{name}")
    try:
        for version in versions:
            build_server_image(client, images.ref(version), version)
            _push(client, registry, images, version)
    finally:
        client.close()
    return images


def unique_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


@dataclass
class AppHome:
    """One simulated host: a SHIPYARD_HOME, a shipyard.yml and the CLI around them."""

    root: Path
    docker_url: str
    registry: Registry
    app: str
    environ: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "shipyard.yml"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def write_config(self, images: PushedImages, **overrides: object) -> dict[str, object]:
        previous = yaml.safe_load(self.config.read_text()) if self.config.exists() else None
        port = previous["port"] if previous else free_port_pair()
        listen = int(previous["proxy"]["listen"].rsplit(":", 1)[1]) if previous else free_port()
        document: dict[str, object] = {
            "app": self.app,
            "image": images.repository,
            "registry": {"username_env": "SHIPYARD_TEST_REG_USER", "password_env": "SHIPYARD_TEST_REG_PASS"},
            "port": port,
            "proxy": {"listen": f"127.0.0.1:{listen}"},
            "healthcheck": {"interval": 0.1, "deadline": 8},
            "deploy": {"drain_timeout": 5, "stop_timeout": 5},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}  # type: ignore[dict-item]
            else:
                document[key] = value
        self.config.write_text(yaml.safe_dump(document))
        return document

    @property
    def listen_url(self) -> str:
        document = yaml.safe_load(self.config.read_text())
        return f"http://{document['proxy']['listen']}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SHIPYARD_HOME": str(self.home),
            "DOCKER_HOST": self.docker_url,
            "SHIPYARD_TEST_REG_USER": self.registry.username,
            "SHIPYARD_TEST_REG_PASS": self.registry.password,
            "SHIPYARD_MASTER_KEY": os.environ.get("SHIPYARD_MASTER_KEY", ""),
            **self.environ,
        }

    def argv(self, *args: str) -> list[str]:
        # `python -m shipyard` is the console script: a host command loads only the host commands.
        return [sys.executable, "-m", "shipyard", *args, "--config", str(self.config)]

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args), cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"shipyard {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def teardown(self) -> None:
        """End this home's standby reapers, remove this app's containers and stop this home's haproxy."""
        stop_reapers(self.home)  # a reaper waking later would bring this home's haproxy back
        remove_app_containers(self.docker_url, self.app)
        stop_haproxy(self.home)


def stop_reapers(home: Path) -> int:
    """End the standby reapers shipyard detached for this SHIPYARD_HOME (they would sleep out the standby)."""
    stopped = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        reaper = b"shipyard.host.reaper" in argv or b"shipyard.cli.standby_keeper" in argv
        if reaper and str(home).encode() in argv:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGTERM)
                stopped += 1
    return stopped


def remove_app_containers(docker_url: str, app: str) -> None:
    client = docker.DockerClient(base_url=docker_url)
    try:
        for container in client.containers.list(all=True, filters={"label": f"shipyard.app={app}"}):
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
    finally:
        client.close()


def stop_haproxy(home: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((home / "haproxy" / "haproxy.pid").read_text().split()[0]), signal.SIGTERM)
        time.sleep(0.05)
