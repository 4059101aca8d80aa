"""Git, through the git CLI: which commit a ref names, and a clean copy of that commit's files.

A build reads a commit with ``git archive`` into a directory of its own, so neither uncommitted
changes nor untracked files of the working tree reach an image. Failures of git become
ConfigError (not a repository, unknown ref) or BuildError (git itself failed), here only.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shipyard.adapters import process_groups
from shipyard.errors import BuildError, ConfigError

FULL_SHA_LENGTH = 40


def _git_binary() -> str:
    binary = shutil.which("git")
    if binary is None:
        raise BuildError("git is not installed; install git to build from a commit.")
    return binary


def _run_git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_git_binary(), "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(
            f"running git in {repo} failed ({type(exc).__name__}); check the git installation."
        ) from exc


def repository_root(repo: Path = Path(".")) -> Path:
    """The top directory of the git repository holding ``repo``."""
    if not repo.exists():
        raise ConfigError(f"{repo} does not exist; run the command inside the app's git repository.")
    done = _run_git(repo, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise ConfigError(
            f"{repo.resolve()} is not inside a git repository; run 'git init' and commit, "
            "or pass --config pointing into the app's repository."
        )
    return Path(done.stdout.strip())


def resolve_commit(ref: str, repo: Path = Path(".")) -> str:
    """The full sha of the commit ``ref`` names (a branch, tag, short or full sha, HEAD~1...)."""
    if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise ConfigError(f"{ref!r} is not a git ref; give a branch, a tag or a commit sha.")
    repository_root(repo)
    done = _run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    sha = done.stdout.strip()
    if done.returncode != 0 or len(sha) != FULL_SHA_LENGTH:
        hint = (
            "the repository has no commit yet; commit first"
            if ref == "HEAD"
            else "check the name, or fetch it"
        )
        raise ConfigError(f"{ref!r} is not a commit of the repository at {repo.resolve()}; {hint}.")
    return sha


def source_url(repo: Path = Path(".")) -> str:
    """Where the code comes from: the origin remote's URL without credentials, else the repository path."""
    root = repository_root(repo)
    remotes = _run_git(root, "remote").stdout.split()
    if not remotes:
        return str(root)
    name = "origin" if "origin" in remotes else remotes[0]
    url = _run_git(root, "remote", "get-url", name).stdout.strip()
    return without_credentials(url) if url else str(root)


def without_credentials(url: str) -> str:
    """``https://user:token@host/x.git`` -> ``https://host/x.git``; scp-like and path URLs unchanged."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    if parts.scheme in ("ssh", "git+ssh"):
        return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))
    return urlunsplit(parts._replace(netloc=host))


def export_commit(sha: str, repo: Path, destination: Path) -> None:
    """Write the files of commit ``sha`` (the whole repository tree) into ``destination``."""
    root = repository_root(repo)
    destination.mkdir(parents=True, exist_ok=True)
    argv = [_git_binary(), "-C", str(root), "archive", "--format=tar", sha]
    try:
        with process_groups.started(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            assert process.stdout is not None
            with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
                archive.extractall(destination, filter="tar")
            problem = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
    except (OSError, tarfile.TarError) as exc:
        raise BuildError(f"copying commit {sha[:12]} out of {root} failed ({type(exc).__name__}).") from exc
    if process.returncode != 0:
        last_line = problem.splitlines()[-1] if problem else "no output"
        raise BuildError(f"git archive of commit {sha[:12]} failed ({last_line}); check the repository.")
