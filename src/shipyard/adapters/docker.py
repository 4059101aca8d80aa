"""A typed wrapper over the docker SDK: the only module that calls it for deploys.

docker.errors.* and connection errors are translated into DockerError / NotFoundError once, in
`_translate`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from shipyard.domain.models import (
    LABEL_APP,
    LABEL_DIGEST,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_SLOT,
    ContainerInfo,
    ContainerSpec,
    Slot,
)
from shipyard.errors import DockerError, NotFoundError

T = TypeVar("T")

__all__ = ["ContainerSpec", "DockerEngine"]


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NotFoundError(f"{action} failed: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        raise DockerError(f"{action} failed: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise DockerError(
            f"{action} failed: the Docker Engine does not answer ({exc}); start dockerd or set DOCKER_HOST."
        ) from exc


class DockerEngine:
    def __init__(self, base_url: str | None = None, timeout: int = 60) -> None:
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.base_url = url
        with _translate("connecting to the Docker Engine"):
            self.client = docker.DockerClient(base_url=url, timeout=timeout)
            self.client.ping()

    def close(self) -> None:
        self.client.close()

    # images -----------------------------------------------------------------------------------
    def image_present(self, reference: str) -> bool:
        try:
            self.client.images.get(reference)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            # The engine answers 400 "invalid reference" for malformed names: not present.
            if exc.status_code == 400:
                return False
            raise DockerError(f"inspecting image {reference} failed: {exc.explanation}") from exc

    def present_digests(self, repository: str) -> frozenset[str]:
        with _translate(f"listing images of {repository}"):
            digests = set()
            for image in self.client.images.list(name=repository):
                for repo_digest in image.attrs.get("RepoDigests") or []:
                    # The same content pushed elsewhere is listed too; only this repository counts.
                    name, _, digest = repo_digest.partition("@")
                    if name == repository:
                        digests.add(digest)
            return frozenset(digests)

    def pull(
        self,
        repository: str,
        digest: str,
        auth: dict[str, str] | None,
        progress: Callable[[dict[str, Any]], None],
    ) -> None:
        """Pull by digest, streaming the engine's progress events to `progress`."""
        with _translate(f"pulling {repository}@{digest}"):
            stream = self.client.api.pull(repository, tag=digest, stream=True, decode=True, auth_config=auth)
            for event in stream:
                if "error" in event:
                    raise DockerError(f"pulling {repository}@{digest} failed: {event['error']}")
                progress(event)
        if not self.image_present(f"{repository}@{digest}"):
            raise DockerError(
                f"the pulled image does not carry digest {digest}: the registry served other content."
            )

    def version(self) -> str:
        """The Engine's own version ("20.10.24+dfsg1")."""
        with _translate("reading the Docker Engine version"):
            return str(self.client.version().get("Version", ""))

    def data_root(self) -> str:
        """The engine's DockerRootDir, where its images and containers live."""
        with _translate("reading the engine's info"):
            return str(self.client.info().get("DockerRootDir") or "")

    def remove_image(self, reference: str) -> None:
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
            self.client.images.remove(reference)

    # containers -------------------------------------------------------------------------------
    def run(self, spec: ContainerSpec) -> str:
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "environment": spec.env,
            "labels": spec.labels,
            "detach": True,
            "init": True,
            "restart_policy": {"Name": "unless-stopped"},
            "volumes": spec.volumes,
        }
        if spec.network == "host":
            kwargs["network_mode"] = "host"
        else:
            kwargs["ports"] = {f"{port}/tcp": binding for port, binding in spec.ports.items()}
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.command:
            kwargs["command"] = spec.command
        with _translate(f"starting container {spec.name}"):
            container = self.client.containers.run(spec.image, **kwargs)
            return str(container.id)

    def containers(self, app: str) -> list[ContainerInfo]:
        with _translate(f"listing containers of {app}"):
            found = self.client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app}"})
        return [self._info(c) for c in found]

    @staticmethod
    def _info(container: Any) -> ContainerInfo:
        labels = container.labels
        slot: Slot = "green" if labels.get(LABEL_SLOT) == "green" else "blue"
        return ContainerInfo(
            id=container.id,
            name=container.name,
            app=labels.get(LABEL_APP, ""),
            slot=slot,
            release_id=labels.get(LABEL_RELEASE, ""),
            digest=labels.get(LABEL_DIGEST, ""),
            status=container.status,
            started_at=container.attrs.get("State", {}).get("StartedAt", ""),
            image_id=container.attrs.get("Image", ""),
            process=labels.get(LABEL_PROCESS, "web"),
        )

    def status(self, name: str) -> tuple[str, int | None]:
        """(status, exit code when exited) of a container."""
        with _translate(f"inspecting container {name}"):
            container = self.client.containers.get(name)
            state = container.attrs.get("State", {})
            return str(container.status), state.get("ExitCode") if container.status == "exited" else None

    def stop(self, name: str, timeout: int) -> None:
        with _translate(f"stopping container {name}"):
            try:
                self.client.containers.get(name).stop(timeout=timeout)
            except docker.errors.NotFound:
                return

    def start(self, name: str) -> None:
        with _translate(f"starting container {name}"):
            self.client.containers.get(name).start()

    def remove(self, name: str) -> None:
        with _translate(f"removing container {name}"):
            try:
                self.client.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                return

    def logs(self, name: str, tail: int = 20) -> str:
        try:
            raw = self.client.containers.get(name).logs(tail=tail)
        except docker.errors.DockerException:
            return ""
        return bytes(raw).decode(errors="replace")

    def follow_logs(self, name: str, tail: int = 50) -> Iterator[str]:
        with _translate(f"reading logs of {name}"):
            stream = self.client.containers.get(name).logs(stream=True, follow=True, tail=tail)
            for chunk in stream:
                yield bytes(chunk).decode(errors="replace")

    def timed_logs(self, name: str, since: float | None = None, tail: int | None = None) -> str:
        """The container's lines, each after its RFC 3339 timestamp; from `since` (epoch seconds) on,
        at most the last `tail`; empty when the container is gone."""
        options: dict[str, Any] = {"timestamps": True, "tail": "all" if tail is None else tail}
        if since is not None:
            options["since"] = since
        try:
            raw = self.client.containers.get(name).logs(**options)
        except docker.errors.NotFound:
            return ""
        except docker.errors.DockerException as exc:
            raise DockerError(f"reading logs of {name} failed: {exc}; check the Docker Engine.") from exc
        return bytes(raw).decode(errors="replace")

    def call(self, action: str, function: Callable[[], T]) -> T:
        """Run another SDK call with the same error translation."""
        with _translate(action):
            return function()
