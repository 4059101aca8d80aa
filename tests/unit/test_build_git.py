"""The git adapter against real repositories made with `git init` in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipyard.adapters.git import export_commit, repository_root, resolve_commit, source_url
from shipyard.errors import ConfigError

GIT = [
    "git",
    "-c",
    "user.email=ci@shipyard.test",
    "-c",
    "user.name=shipyard tests",
    "-c",
    "init.defaultBranch=main",
]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_file(root: Path, name: str, text: str) -> str:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"write {name}")
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q")
    return root


def test_refs_resolve_to_the_full_sha(repo: Path) -> None:
    first = commit_file(repo, "a.txt", "one")
    git(repo, "tag", "v1")
    second = commit_file(repo, "a.txt", "two")

    assert resolve_commit("HEAD", repo) == second
    assert resolve_commit("main", repo) == second
    assert resolve_commit("v1", repo) == first
    assert resolve_commit(first[:8], repo) == first
    assert resolve_commit("HEAD~1", repo) == first
    assert len(second) == 40


def test_an_annotated_tag_resolves_to_its_commit(repo: Path) -> None:
    sha = commit_file(repo, "a.txt", "one")
    git(repo, "tag", "-a", "v2", "-m", "release")

    assert resolve_commit("v2", repo) == sha


def test_a_subdirectory_resolves_in_its_repository(repo: Path) -> None:
    sha = commit_file(repo, "services/web/shipyard.yml", "app: web\n")

    assert resolve_commit("HEAD", repo / "services" / "web") == sha
    assert repository_root(repo / "services" / "web") == repo.resolve()


def test_not_a_git_repository_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not inside a git repository"):
        resolve_commit("HEAD", tmp_path)


def test_an_unknown_ref_is_a_clear_config_error(repo: Path) -> None:
    commit_file(repo, "a.txt", "one")

    with pytest.raises(ConfigError, match="'no-such-branch' is not a commit of the repository"):
        resolve_commit("no-such-branch", repo)


def test_a_repository_without_commits_says_so(repo: Path) -> None:
    with pytest.raises(ConfigError, match="has no commit yet"):
        resolve_commit("HEAD", repo)


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "", "two words"])
def test_option_like_or_blank_refs_are_refused(repo: Path, ref: str) -> None:
    with pytest.raises(ConfigError, match="is not a git ref"):
        resolve_commit(ref, repo)


def test_export_holds_the_commit_not_the_working_tree(repo: Path, tmp_path: Path) -> None:
    sha = commit_file(repo, "app/version", "committed\n")
    (repo / "app" / "version").write_text("edited, not committed\n")
    (repo / "untracked.env").write_text("SECRET=1\n")

    export_commit(sha, repo, tmp_path / "out")

    assert (tmp_path / "out" / "app" / "version").read_text() == "committed\n"
    assert not (tmp_path / "out" / "untracked.env").exists()
    assert not (tmp_path / "out" / ".git").exists()


def test_export_keeps_executable_bits_and_symlinks(repo: Path, tmp_path: Path) -> None:
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("run.sh")
    sha = commit_file(repo, "x", "x")

    export_commit(sha, repo, tmp_path / "out")

    assert (tmp_path / "out" / "run.sh").stat().st_mode & 0o111
    assert (tmp_path / "out" / "link").is_symlink()


def test_source_is_the_origin_url_without_credentials(repo: Path) -> None:
    commit_file(repo, "a", "a")
    git(repo, "remote", "add", "origin", "https://ci:ghp_notreal@git.example/team/web.git")

    assert source_url(repo) == "https://git.example/team/web.git"


def test_source_is_the_repository_path_without_a_remote(repo: Path) -> None:
    commit_file(repo, "a", "a")

    assert source_url(repo) == str(repo.resolve())
