"""The controller process freezes its start-up heap once it serves; an app made in a test does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.controller.server.app import create_app
from shipyard.controller.server.heap import settle_heap
from shipyard.controller.server.settings import ControllerSettings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector


def test_settling_freezes_what_is_alive_and_collects_the_rest_first(unfrozen: None) -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle  # garbage only the cyclic collector finds: collected, not frozen
    frozen = settle_heap()
    assert frozen == gc.get_freeze_count()
    assert frozen >= 10_000  # at least the modules and classes this process imported
    assert gc.garbage == []


def test_a_serving_app_settles_only_when_its_settings_ask(tmp_path: Path, unfrozen: None) -> None:
    plain = ControllerSettings(database_url=f"sqlite:///{tmp_path}/plain.db")
    with TestClient(create_app(plain)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
    settling = ControllerSettings(database_url=f"sqlite:///{tmp_path}/settled.db", settle_heap=True)
    with TestClient(create_app(settling)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0


def test_the_controller_command_asks_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    result = CliRunner().invoke(cli, ["controller", "--db", f"sqlite:///{tmp_path}/c.db"])
    assert result.exit_code == 0, result.output
    assert served[0].state.context.settings.settle_heap is True
