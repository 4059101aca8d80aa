"""The files a build reads: a clean copy of one commit, or (``--dirty``) the working tree as it is.

The copy holds the whole repository tree of the commit, so an app whose shipyard.yml lives in a
sub-directory of a larger repository builds from the same relative place.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipyard.adapters import git
from shipyard.domain.spec import BuildSpec
from shipyard.errors import ConfigError


@dataclass(frozen=True)
class BuildSource:
    commit: str
    dirty: bool
    context: Path
    dockerfile: Path
    source_url: str


@contextmanager
def prepared_source(config_dir: Path, build: BuildSpec, commit: str, *, dirty: bool) -> Iterator[BuildSource]:
    """The context of commit ``commit`` in a temporary directory (deleted on exit), or the working tree."""
    root = git.repository_root(config_dir)
    url = git.source_url(root)
    if dirty:
        yield _located(config_dir, build, commit, dirty=True, url=url, where="the working tree")
        return
    checkout = Path(tempfile.mkdtemp(prefix="shipyard-checkout-"))
    try:
        git.export_commit(commit, root, checkout)
        inside = checkout / config_dir.resolve().relative_to(root.resolve())
        yield _located(inside, build, commit, dirty=False, url=url, where=f"commit {commit[:12]}")
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def _located(
    app_dir: Path, build: BuildSpec, commit: str, *, dirty: bool, url: str, where: str
) -> BuildSource:
    context = (app_dir / build.context).resolve()
    dockerfile = (context / build.dockerfile).resolve()
    if not context.is_dir():
        raise ConfigError(
            f"build.context {build.context!r} is not a directory in {where}; commit it or fix the path."
        )
    if not dockerfile.is_file():
        raise ConfigError(
            f"build.dockerfile {build.dockerfile!r} (relative to build.context) is not a file in {where}; "
            "commit it or fix the path."
        )
    return BuildSource(commit=commit, dirty=dirty, context=context, dockerfile=dockerfile, source_url=url)
