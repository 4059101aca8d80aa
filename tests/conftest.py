"""Real components for the whole suite: one Docker Engine, one registry, test images pushed once."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.lab.single_host import (
    AppHome,
    PushedImages,
    Registry,
    start_engine,
    start_local_registry,
    unique_name,
)
from support.images import push_test_images


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="shipyard-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_url(work_dir: Path) -> str:
    return start_engine(work_dir)


@pytest.fixture(scope="session")
def registry(work_dir: Path) -> Iterator[Registry]:
    server = start_local_registry(work_dir)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def images(docker_url: str, registry: Registry) -> PushedImages:
    return push_test_images(docker_url, registry, unique_name("shipyard-test-"))


@pytest.fixture
def app_home(tmp_path: Path, docker_url: str, registry: Registry) -> Iterator[AppHome]:
    home = AppHome(root=tmp_path, docker_url=docker_url, registry=registry, app=unique_name("t"))
    yield home
    home.teardown()
