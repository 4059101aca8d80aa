"""What the log says about stopped commands: their names without options or values, and how they ended."""

from __future__ import annotations

import pytest

from shipyard.adapters.process_groups import Stopped, command_name, describe


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (
            ["git", "-c", "advice.detachedHead=false", "fetch", "-q", "--depth", "1", "origin", "f" * 40],
            "git fetch",
        ),
        (["/usr/bin/git", "-C", "/srv/repo", "archive", "--format=tar", "abc"], "git archive"),
        (["/usr/bin/docker", "buildx", "build", "--load", "--progress=plain", "."], "docker buildx build"),
        (["docker", "build", "--progress=plain", "--secret", "id=token,src=/tmp/s", "."], "docker build"),
        (["git", "remote", "add", "origin", "https://user:pass@example.com/app.git"], "git remote add"),
        (
            ["docker", "--config", "/tmp/c", "push", "registry:5000/web:abc"],
            "docker push registry:5000/web:abc",
        ),
        ([], "?"),
    ],
)
def test_a_command_is_named_by_its_program_and_subcommands_only(argv: list[str], name: str) -> None:
    assert command_name(argv) == name


def test_a_stop_is_described_by_what_each_command_received() -> None:
    assert describe([], 5.0) == "no command was running"
    assert describe([Stopped("docker build")], 5.0) == "stopped docker build (SIGTERM)"
    both = [Stopped("git fetch", killed=True), Stopped("docker build")]
    assert (
        describe(both, 2.5) == "stopped git fetch (SIGTERM, then SIGKILL after 2.5 s), docker build (SIGTERM)"
    )
