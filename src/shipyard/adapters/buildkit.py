"""The docker CLI as BuildKit's front end: every invocation is argv data, run by one runner.

    cli = find_docker_cli(spec.build.docker)
    run_docker(build_argv(cli, request), docker_environment(cli, config_dir), action="the build")

``docker buildx build`` when the CLI has buildx, else ``DOCKER_BUILDKIT=1 docker build`` (a docker
CLI older than 23.0 drives the engine's built-in BuildKit without buildx). A failed invocation
becomes RegistryError (credentials refused), NotFoundError (no such image) or BuildError, here only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shipyard.adapters import process_groups
from shipyard.errors import BuildError, NotFoundError, RegistryError, ShipyardError
from shipyard.secrets.masking import mask

DEFAULT_CLIS = ("docker", "/usr/bin/docker", "/usr/local/bin/docker")
LAST_CLI_WITHOUT_BUILDX = 22  # from 23.0 on, `docker build` needs the buildx plugin for BuildKit
LOG_TAIL_LINES = 40
REFUSED = re.compile(r"unauthorized|authentication required|denied|incorrect username or password", re.I)
NO_SUCH_IMAGE = re.compile(
    r"no such image|reference does not exist|manifest unknown|not found: manifest", re.I
)
VERTEX_DIGEST = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")  # BuildKit's id of each step: noise in a log tail
LineSink = Callable[[str], None]


@dataclass(frozen=True)
class DockerCli:
    path: str
    buildx: bool


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    dockerfile: Path
    tags: tuple[str, ...]
    image_id_file: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, str] = field(default_factory=dict)
    secret_files: Mapping[str, Path] = field(default_factory=dict)
    cache_from: tuple[str, ...] = ()
    target: str | None = None
    network: str | None = None


def build_argv(cli: DockerCli, request: BuildRequest) -> list[str]:
    head = [cli.path, "buildx", "build", "--load"] if cli.buildx else [cli.path, "build"]
    argv = [*head, "--progress=plain", "--file", str(request.dockerfile)]
    argv += ["--iidfile", str(request.image_id_file)]
    for tag in request.tags:
        argv += ["--tag", tag]
    for name, value in sorted(request.labels.items()):
        argv += ["--label", f"{name}={value}"]
    for name, value in sorted(request.args.items()):
        argv += ["--build-arg", f"{name}={value}"]
    for reference in request.cache_from:
        argv += ["--cache-from", reference]
    for secret_id, path in sorted(request.secret_files.items()):
        argv += ["--secret", f"id={secret_id},src={path}"]
    if request.target:
        argv += ["--target", request.target]
    if request.network:
        argv += ["--network", request.network]
    return [*argv, str(request.context)]


def login_argv(cli: DockerCli, server: str, username: str) -> list[str]:
    return [cli.path, "login", server, "--username", username, "--password-stdin"]


# Commands that act on one image: the image reference is appended as the last argument.
IMAGE_COMMANDS: dict[str, tuple[str, ...]] = {
    "push": ("push",),
    "pull": ("pull", "--quiet"),
    "save": ("save",),
    "inspect": ("image", "inspect", "--format", "{{json .}}"),
    "history": ("history", "--no-trunc", "--format", "{{.CreatedBy}}"),
}


def image_argv(cli: DockerCli, command: str, image: str) -> list[str]:
    return [cli.path, *IMAGE_COMMANDS[command], image]


def network_names_argv(cli: DockerCli) -> list[str]:
    return [cli.path, "network", "ls", "--format", "{{.Name}}"]


def docker_environment(
    cli: DockerCli, docker_config: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The CLI's environment: a private DOCKER_CONFIG (never ~/.docker), BuildKit on."""
    environment = dict(os.environ if base is None else base)
    environment["DOCKER_CONFIG"] = str(docker_config)
    if not cli.buildx:
        environment["DOCKER_BUILDKIT"] = "1"
    return environment


def pushed_digest(output: list[str], tag: str) -> str | None:
    """The digest `docker push` reports for ``tag`` (``<tag>: digest: sha256:... size: N``)."""
    found = re.findall(rf"(?:^|\s){re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}})", "\n".join(output), re.M)
    return str(found[-1]) if found else None


def find_docker_cli(configured: str | None = None) -> DockerCli:
    """The configured CLI, else the first of docker on PATH, /usr/bin/docker, /usr/local/bin/docker
    that can run BuildKit."""
    candidates = [configured] if configured else list(dict.fromkeys(DEFAULT_CLIS))
    for candidate in candidates:
        cli = _probe(candidate)
        if cli is not None:
            return cli
    which = f"build.docker {configured} is not" if configured else "no docker CLI found is"
    raise BuildError(
        f"{which} a docker CLI that can run BuildKit (it needs buildx, or to be older than 23.0); "
        "install docker-buildx, or set build.docker in shipyard.yml (for example /usr/bin/docker)."
    )


@functools.lru_cache(maxsize=8)
def _probe(candidate: str) -> DockerCli | None:
    path = shutil.which(candidate)
    if path is None:
        return None
    if _quiet_run([path, "buildx", "version"]) is not None:
        return DockerCli(path, buildx=True)
    version = _quiet_run([path, "--version"]) or ""
    major = re.search(r"version (\d+)\.", version)
    if major and int(major.group(1)) <= LAST_CLI_WITHOUT_BUILDX:
        return DockerCli(path, buildx=False)
    return None


def _quiet_run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def run_docker(
    argv: list[str],
    environment: Mapping[str, str],
    *,
    action: str,
    stdin: str | None = None,
    on_line: LineSink | None = None,
    registry: bool = False,
    keep: int | None = LOG_TAIL_LINES,
) -> list[str]:
    """Run one docker CLI command; each output line goes to ``on_line``; returns the last ``keep``
    lines (all with None).

    ``registry`` marks commands that talk to a registry or name one image (login, push, pull, save):
    their refusals are RegistryError and a missing image NotFoundError, while a build log saying
    "permission denied" or "not found" is a build failure.
    """
    tail: deque[str] = deque(maxlen=keep)
    try:
        returncode = _run_lines(argv, environment, stdin, lambda line: _keep(line, tail, on_line))
    except OSError as exc:
        raise BuildError(f"{action} failed: cannot run {argv[0]} ({exc.strerror}).") from exc
    if returncode != 0:
        raise command_failure(action, returncode, list(tail)[-LOG_TAIL_LINES:], registry=registry)
    return list(tail)


def _keep(line: str, tail: deque[str], on_line: LineSink | None) -> None:
    tail.append(line)
    if on_line is not None:
        on_line(line)


def _run_lines(argv: list[str], environment: Mapping[str, str], stdin: str | None, sink: LineSink) -> int:
    """Run ``argv`` with stdout and stderr merged, each line to ``sink``; its exit status."""
    with process_groups.started(
        argv,
        env=dict(environment),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as process:
        assert process.stdout is not None
        if stdin is not None and process.stdin is not None:
            process.stdin.write(stdin)
            process.stdin.close()
        for raw in process.stdout:
            sink(raw.rstrip("\n"))
    return process.returncode


@contextmanager
def docker_output(argv: list[str], environment: Mapping[str, str], *, action: str) -> Iterator[IO[bytes]]:
    """The binary stdout of a long command (``docker save``), streamed; a failure of the command
    is raised as its own error, also when the reader failed first on the stream it left behind."""
    with tempfile.TemporaryFile() as errors, contextlib.ExitStack() as running:
        try:
            process = running.enter_context(
                process_groups.started(argv, env=dict(environment), stdout=subprocess.PIPE, stderr=errors)
            )
        except OSError as exc:
            raise BuildError(f"{action} failed: cannot run {argv[0]} ({exc.strerror}).") from exc
        assert process.stdout is not None
        try:
            yield process.stdout
            while process.stdout.read(1 << 16):
                pass  # the reader stops at the tar's end marker; let the command finish writing
        except Exception as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if process.wait(timeout=2) != 0:  # the reader failed on what a failed command left
                    raise _stream_failure(action, process.returncode, errors) from exc
            raise
        finally:
            process.stdout.close()
            if process.poll() is None:
                process.kill()
            process.wait()
        if process.returncode != 0:
            raise _stream_failure(action, process.returncode, errors)


def _stream_failure(action: str, returncode: int, errors: IO[bytes]) -> ShipyardError:
    errors.seek(0)
    lines = errors.read().decode(errors="replace").splitlines()
    return command_failure(action, returncode, lines[-LOG_TAIL_LINES:], registry=True)


def command_failure(
    action: str, returncode: int, tail: list[str], *, registry: bool = False
) -> ShipyardError:
    """The one translation of a failed docker CLI command into shipyard's errors."""
    masked = [mask(line) for line in tail if line.strip() and not VERTEX_DIGEST.match(line)]
    cause = next((line.strip() for line in reversed(masked) if line.strip()), f"exit status {returncode}")
    if registry and any(REFUSED.search(line) for line in masked):
        return RegistryError(
            f"{action} failed: the registry refused the credentials ({cause}); "
            "check registry.username_env and password_env (or the secret store)."
        )
    if registry and any(NO_SUCH_IMAGE.search(line) for line in masked):
        return NotFoundError(f"{action} failed: {cause}; check the image name and tag.")
    return BuildError(f"{action} failed ({cause}); the end of its output is below.", details=masked)
