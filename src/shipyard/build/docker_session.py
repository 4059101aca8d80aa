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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from shipyard.adapters import buildkit
from shipyard.adapters.buildkit import BuildRequest, DockerCli, LineSink
from shipyard.adapters.registry import Credentials
from shipyard.domain.spec import RegistrySpec
from shipyard.errors import BuildError, ConfigError, SecretError
from shipyard.secrets.masking import register_secret
from shipyard.secrets.store import SecretStore


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


def registry_credentials(
    spec: RegistrySpec,
    store: SecretStore,
    base_dir: Path,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool = False,
) -> Credentials | None:
    """Credentials from registry.username_env/password_env (the secret store first, then the
    environment) or username_file/password_file. None when none are configured, or when they are
    not all set and not ``required`` (a local build without --push needs no login)."""
    environ = os.environ if environ is None else environ
    names = [name for name in (spec.username_env, spec.password_env) if name]
    stored = store.items() if names and store.exists() else {}
    username = _credential(spec.username_env, spec.username_file, stored, environ, base_dir)
    password = _credential(spec.password_env, spec.password_file, stored, environ, base_dir)
    if username is not None and password is not None:
        register_secret(password)
        return Credentials(username, password)
    if not required or not any(
        (spec.username_env, spec.username_file, spec.password_env, spec.password_file)
    ):
        return None
    missing = [
        name
        for name, value in ((spec.username_env, username), (spec.password_env, password))
        if name and not value
    ]
    if not missing:
        raise ConfigError("registry: set both a username (_env or _file) and a password (_env or _file).")
    them, are = ("them", "are") if len(missing) > 1 else ("it", "is")
    raise SecretError(
        f"pushing needs a registry login, but {' and '.join(missing)} {are} not set; "
        f"export {them} or add {them} with 'shipyard secrets set NAME --env {store.env}'.",
        details=missing,
    )


def _credential(
    env_name: str | None,
    file_name: str | None,
    stored: Mapping[str, str],
    environ: Mapping[str, str],
    base: Path,
) -> str | None:
    if env_name:
        return stored.get(env_name, environ.get(env_name)) or None
    if file_name:
        path = base / Path(file_name).expanduser()
        try:
            return path.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the registry credential file {path} ({type(exc).__name__})."
            ) from exc
    return None
