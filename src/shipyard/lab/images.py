"""The lab's demo images, built once with the machine's default Docker Engine and pushed to the lab registry.

Tags: v1, v2, v3 (healthy, each serving its version at /version) and `broken` (exits at start, so
it never passes its health check).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import docker
import docker.errors

from shipyard.errors import RegistryError
from shipyard.lab.engine import DEFAULT_SOCKET, engine_answers, ensure_default_engine
from shipyard.lab.testapp import Behaviour, build_test_image

LAB_IMAGES: dict[str, tuple[str, Behaviour]] = {
    "v1": ("v1", "ok"),
    "v2": ("v2", "ok"),
    "v3": ("v3", "ok"),
    "broken": ("broken", "crash"),
}


def push_lab_images(
    repository: str, work: Path, tags: dict[str, tuple[str, Behaviour]] | None = None
) -> list[str]:
    """Build and push each tag of `repository` (registry/name); returns the pushed references."""
    client = docker.DockerClient(base_url=ensure_default_engine(work / "engine"))
    pushed = []
    try:
        for tag, (version, behaviour) in (tags or LAB_IMAGES).items():
            build_test_image(client, f"{repository}:{tag}", version, behaviour)
            for event in client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise RegistryError(f"pushing {repository}:{tag} failed: {event['error']}")
            pushed.append(f"{repository}:{tag}")
    except docker.errors.DockerException as exc:
        raise RegistryError(f"building or pushing the lab images failed: {exc}") from exc
    finally:
        client.close()
    return pushed


def remove_lab_images(repository: str) -> None:
    """Untag what push_lab_images built in the default engine (layers shared with others stay)."""
    base_url = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if not engine_answers(base_url):
        return
    client = docker.DockerClient(base_url=base_url)
    try:
        for tag in LAB_IMAGES:
            with contextlib.suppress(docker.errors.DockerException):
                client.images.remove(f"{repository}:{tag}", noprune=False)
    finally:
        client.close()
