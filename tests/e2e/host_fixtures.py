"""Fixtures for the e2e tests of single hosts: a lab without hosts, a short working directory."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.lab.fleet import lab_down, lab_up
from shipyard.lab.hosts import unmount_under

from .lab_harness import Lab


@pytest.fixture(scope="module")
def empty_lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="shipyard-bootstrap-"))
    subnet = f"127.0.{random.randint(100, 250)}"
    try:
        lab_up(root / "lab", 0, subnet=subnet)
        yield Lab(root / "lab")
    finally:
        if (root / "lab" / "lab.json").exists():
            lab_down(root / "lab")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A short directory: unix socket paths (containerd's, haproxy's) must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="syb-", dir="/tmp"))
    yield path
    unmount_under(path)  # the stopped engine's network namespace file
    shutil.rmtree(path, ignore_errors=True)
