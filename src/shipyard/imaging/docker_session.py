"""One docker CLI session for a build or a scan: a private DOCKER_CONFIG, logged in to the registry.

The CLI and BuildKit read registry logins from DOCKER_CONFIG (cache import, push, pull). The
session points it at a fresh 0700 directory, never ~/.docker, runs ``docker login
--password-stdin`` there before the first command that needs it, and deletes the directory (and
the login) when the session ends.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from shipyard.adapters import buildkit
from shipyard.adapters.buildkit import BuildRequest, DockerCli, LineSink
from shipyard.adapters.registry import Credentials
from shipyard.errors import BuildError


class DockerSession:
    def __init__(
        self, cli: DockerCli, docker_config: Path, login: tuple[str, Credentials] | None = None
    ) -> None:
        self.cli = cli
        self.environment = buildkit.docker_environment(cli, docker_config)
        self._pending_login = login

    def ensure_login(self) -> None:
        """Log in to the registry once, before the first command that needs it."""
        if self._pending_login is None:
            return
        server, credentials = self._pending_login
        buildkit.run_docker(
            buildkit.login_argv(self.cli, server, credentials.username),
            self.environment,
            action=f"logging in to the registry {server} as {credentials.username}",
            stdin=credentials.password,
            registry=True,
        )
        self._pending_login = None

    def build(self, request: BuildRequest, on_line: LineSink | None = None) -> str:
        """Build, and return the image id BuildKit wrote to the request's id file."""
        buildkit.run_docker(
            buildkit.build_argv(self.cli, request), self.environment, action="the build", on_line=on_line
        )
        return request.image_id_file.read_text().strip()

    def push(self, reference: str) -> str | None:
        """Push one tag; the digest the registry stored it under, if the CLI reported it."""
        self.ensure_login()
        output = buildkit.run_docker(
            buildkit.image_argv(self.cli, "push", reference),
            self.environment,
            action=f"pushing {reference}",
            registry=True,
        )
        return buildkit.pushed_digest(output, reference.rsplit(":", 1)[-1])

    def pull(self, reference: str) -> None:
        self.ensure_login()
        buildkit.run_docker(
            buildkit.image_argv(self.cli, "pull", reference),
            self.environment,
            action=f"pulling {reference}",
            registry=True,
        )

    @contextmanager
    def saved_image(self, image: str) -> Iterator[IO[bytes]]:
        """The image as a `docker save` tar stream: every layer, with the config and history."""
        with buildkit.docker_output(
            buildkit.image_argv(self.cli, "save", image),
            self.environment,
            action=f"reading the layers of {image}",
        ) as stream:
            yield stream

    def image_metadata(self, image: str) -> tuple[dict[str, Any], list[str]]:
        """`docker image inspect` of ``image`` and the instructions of its history, newest first."""
        action = f"reading the metadata of {image}"
        environment = self.environment
        inspected = buildkit.run_docker(
            buildkit.image_argv(self.cli, "inspect", image), environment, action=action, keep=None
        )
        history = buildkit.run_docker(
            buildkit.image_argv(self.cli, "history", image), environment, action=action, keep=None
        )
        try:
            document = json.loads("\n".join(inspected))
        except ValueError as exc:
            raise BuildError(f"{action} failed: docker image inspect did not print JSON.") from exc
        return document, history

    def has_bridge_network(self) -> bool:
        output = buildkit.run_docker(
            buildkit.network_names_argv(self.cli), self.environment, action="listing the engine's networks"
        )
        return "bridge" in (line.strip() for line in output)


@contextmanager
def docker_session(
    cli: DockerCli, server: str | None = None, credentials: Credentials | None = None
) -> Iterator[DockerSession]:
    folder = Path(tempfile.mkdtemp(prefix="shipyard-docker-config-"))
    try:
        os.chmod(folder, 0o700)
        login = (server, credentials) if server is not None and credentials is not None else None
        yield DockerSession(cli, folder, login)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
