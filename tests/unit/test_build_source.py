"""The files a build reads: a clean copy of a commit, or the working tree with --dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipyard.domain.spec import BuildSpec
from shipyard.errors import ConfigError
from shipyard.imaging.source import prepared_source

GIT = ["git", "-c", "user.email=ci@shipyard.test", "-c", "user.name=shipyard tests"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """A repository whose app (shipyard.yml, docker/Dockerfile, src/) lives in services/web."""
    root = tmp_path / "repo"
    app = root / "services" / "web"
    (app / "docker").mkdir(parents=True)
    (app / "src").mkdir()
    (app / "docker" / "Dockerfile").write_text("FROM scratch\nCOPY src/ /src/\n")
    (app / "src" / "main.txt").write_text("committed\n")
    (app / "shipyard.yml").write_text("app: web\nimage: r:5000/web\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return app


def head(app: Path) -> str:
    return git(app, "rev-parse", "HEAD")


def test_a_commit_is_copied_out_and_removed_afterwards(monorepo: Path) -> None:
    (monorepo / "src" / "main.txt").write_text("dirty\n")
    build = BuildSpec(dockerfile="docker/Dockerfile")

    with prepared_source(monorepo, build, head(monorepo), dirty=False) as source:
        assert (source.context / "src" / "main.txt").read_text() == "committed\n"
        assert source.context.name == "web" and not source.context.is_relative_to(monorepo.parent.parent)
        assert source.dockerfile == source.context / "docker" / "Dockerfile"
        assert source.commit == head(monorepo) and source.source_url == str(monorepo.parent.parent.resolve())
        copy = source.context

    assert not copy.exists()


def test_dirty_builds_read_the_working_tree(monorepo: Path) -> None:
    (monorepo / "src" / "main.txt").write_text("dirty\n")

    with prepared_source(
        monorepo, BuildSpec(dockerfile="docker/Dockerfile"), head(monorepo), dirty=True
    ) as source:
        assert source.dirty
        assert source.context == monorepo.resolve()
        assert (source.context / "src" / "main.txt").read_text() == "dirty\n"

    assert (monorepo / "src" / "main.txt").exists()


def test_a_dockerfile_missing_from_the_commit_is_a_config_error(monorepo: Path) -> None:
    (monorepo / "Dockerfile.new").write_text("FROM scratch\n")  # exists in the working tree only

    with (
        pytest.raises(ConfigError, match=r"build.dockerfile 'Dockerfile.new'.*is not a file in commit"),
        prepared_source(monorepo, BuildSpec(dockerfile="Dockerfile.new"), head(monorepo), dirty=False),
    ):
        pass


def test_a_missing_context_is_a_config_error(monorepo: Path) -> None:
    with (
        pytest.raises(ConfigError, match=r"build\.context 'nowhere' is not a directory"),
        prepared_source(monorepo, BuildSpec(context="nowhere"), head(monorepo), dirty=False),
    ):
        pass
