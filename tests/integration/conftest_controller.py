"""Fixtures of the controller's integration tests, loaded with `pytest_plugins = ["conftest_controller"]`.

Every test using them runs twice: on SQLite and on PostgreSQL, each time on a fresh database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_fixtures import Harness, controller_settings, running_controller, shared_postgres

from shipyard.lab.tls import TlsFiles, make_throwaway_ca


@pytest.fixture(params=["sqlite", "postgresql"])
def controller_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'controller.db'}"
        return
    server = shared_postgres()
    url = server.create_database("controller_test")
    yield url
    server.drop_database(url)


@pytest.fixture(scope="session")
def controller_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost, for controllers served over TCP."""
    return make_throwaway_ca(tmp_path_factory.mktemp("controller-tls"))


@pytest.fixture
def controller_harness(controller_db_url: str) -> Iterator[Harness]:
    with running_controller(controller_settings(controller_db_url)) as running:
        yield running


@pytest.fixture
def harness(controller_db_url: str) -> Iterator[Harness]:
    """A controller whose job worker is off: pipeline tests look at queued jobs or run them themselves."""
    with running_controller(controller_settings(controller_db_url, run_jobs=False)) as running:
        yield running
