"""The docker CLI invocations as data, and the one translation of their failures."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from shipyard.adapters.buildkit import (
    BuildRequest,
    DockerCli,
    build_argv,
    command_failure,
    docker_environment,
    find_docker_cli,
    image_argv,
    login_argv,
    pushed_digest,
)
from shipyard.errors import BuildError, NotFoundError, RegistryError
from shipyard.secrets.masking import forget_registered_secrets, register_secret

CLASSIC = DockerCli("/usr/bin/docker", buildx=False)
BUILDX = DockerCli("/opt/docker", buildx=True)
DIGEST = "sha256:" + "ab" * 32


def request(**changes: object) -> BuildRequest:
    values: dict[str, object] = {
        "context": Path("/tmp/ctx"),
        "dockerfile": Path("/tmp/ctx/Dockerfile"),
        "tags": ("reg:5000/web:abc", "reg:5000/web:cache"),
        "image_id_file": Path("/tmp/iid"),
    }
    values.update(changes)
    return BuildRequest(**values)  # type: ignore[arg-type]


def test_classic_cli_builds_with_docker_build_and_the_context_last() -> None:
    argv = build_argv(CLASSIC, request())

    assert argv[:2] == ["/usr/bin/docker", "build"]
    assert argv[-1] == "/tmp/ctx"
    assert argv[argv.index("--file") + 1] == "/tmp/ctx/Dockerfile"
    assert argv[argv.index("--iidfile") + 1] == "/tmp/iid"
    assert "--progress=plain" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"] == [
        "reg:5000/web:abc",
        "reg:5000/web:cache",
    ]


def test_buildx_cli_uses_buildx_build_and_loads_the_result() -> None:
    assert build_argv(BUILDX, request())[:4] == ["/opt/docker", "buildx", "build", "--load"]


def test_secrets_cache_labels_args_target_and_network_each_become_one_flag_pair() -> None:
    argv = build_argv(
        CLASSIC,
        request(
            labels={"b": "2", "a": "1"},
            args={"BUILDKIT_INLINE_CACHE": "1"},
            secret_files={"npm": Path("/run/s/secret-0")},
            cache_from=("reg:5000/web:cache",),
            target="runtime",
            network="host",
        ),
    )

    pairs = list(itertools.pairwise(argv))
    assert ("--label", "a=1") in pairs and ("--label", "b=2") in pairs
    assert argv.index("a=1") < argv.index("b=2")
    assert ("--build-arg", "BUILDKIT_INLINE_CACHE=1") in pairs
    assert ("--secret", "id=npm,src=/run/s/secret-0") in pairs
    assert ("--cache-from", "reg:5000/web:cache") in pairs
    assert ("--target", "runtime") in pairs
    assert ("--network", "host") in pairs


def test_no_optional_flag_without_its_value() -> None:
    argv = build_argv(CLASSIC, request())

    for flag in ("--secret", "--cache-from", "--target", "--network", "--label", "--build-arg"):
        assert flag not in argv


def test_argv_never_goes_through_a_shell() -> None:
    argv = build_argv(
        CLASSIC, request(labels={"org.opencontainers.image.source": "/repo with space; rm -rf /"})
    )

    assert "org.opencontainers.image.source=/repo with space; rm -rf /" in argv


def test_login_reads_the_password_from_stdin_never_from_argv() -> None:
    argv = login_argv(CLASSIC, "127.0.0.1:5000", "ci")

    assert argv == ["/usr/bin/docker", "login", "127.0.0.1:5000", "--username", "ci", "--password-stdin"]


def test_image_commands_end_with_the_image() -> None:
    assert image_argv(CLASSIC, "push", "r/web:1") == ["/usr/bin/docker", "push", "r/web:1"]
    assert image_argv(CLASSIC, "save", "r/web:1") == ["/usr/bin/docker", "save", "r/web:1"]
    assert image_argv(CLASSIC, "history", "r/web:1")[-4:] == [
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "r/web:1",
    ]


def test_environment_has_a_private_docker_config_and_buildkit_for_the_classic_cli() -> None:
    base = {"PATH": "/bin", "DOCKER_CONFIG": "/root/.docker"}

    classic = docker_environment(CLASSIC, Path("/tmp/cfg"), base)
    buildx = docker_environment(BUILDX, Path("/tmp/cfg"), base)

    assert classic == {"PATH": "/bin", "DOCKER_CONFIG": "/tmp/cfg", "DOCKER_BUILDKIT": "1"}
    assert buildx == {"PATH": "/bin", "DOCKER_CONFIG": "/tmp/cfg"}


def test_pushed_digest_is_read_from_the_line_of_that_tag() -> None:
    output = [
        "The push refers to repository [127.0.0.1:5000/web]",
        "d65242f8460d: Pushed",
        f"abc123: digest: {DIGEST} size: 942",
    ]

    assert pushed_digest(output, "abc123") == DIGEST
    assert pushed_digest(output, "abc") is None


def test_a_refused_registry_command_is_a_registry_error() -> None:
    error = command_failure(
        "pushing r/web:1",
        1,
        ["Error response from daemon: unauthorized: authentication required"],
        registry=True,
    )

    assert isinstance(error, RegistryError)
    assert "refused the credentials" in error.message


def test_a_build_log_saying_denied_is_a_build_error_with_its_tail() -> None:
    tail = ["#5 [2/2] RUN cat /root/x", "cat: can't open '/root/x': Permission denied", "exit code: 1"]

    error = command_failure("the build", 1, tail)

    assert isinstance(error, BuildError)
    assert error.details == tail
    assert "exit code: 1" in error.message


def test_a_missing_image_is_not_found() -> None:
    error = command_failure(
        "reading the layers of web:9",
        1,
        ["Error response from daemon: reference does not exist"],
        registry=True,
    )

    assert isinstance(error, NotFoundError)


def test_failure_output_is_masked() -> None:
    register_secret("hunter2-hunter2")
    try:
        error = command_failure("the build", 1, ["echo hunter2-hunter2", "failed"])
    finally:
        forget_registered_secrets()

    assert "hunter2-hunter2" not in " ".join(error.details) + error.message


def test_the_debian_cli_drives_buildkit_without_buildx() -> None:
    cli = find_docker_cli("/usr/bin/docker")

    assert cli == DockerCli("/usr/bin/docker", buildx=False)


def test_a_new_cli_without_buildx_is_refused_with_what_to_do() -> None:
    with pytest.raises(BuildError, match=r"install docker-buildx, or set build\.docker"):
        find_docker_cli("/usr/local/bin/docker")


def test_default_search_falls_back_to_a_cli_that_can_build() -> None:
    assert find_docker_cli().path in ("/usr/bin/docker", "/usr/local/bin/docker")


def test_a_missing_cli_is_a_build_error() -> None:
    with pytest.raises(BuildError, match=r"build\.docker /nowhere/docker"):
        find_docker_cli("/nowhere/docker")
