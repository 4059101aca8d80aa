"""The lab controller's preview reconciler period: `lab up --preview-reconcile-interval`, recorded in
lab.json and handed to every start of the controller, restarts included."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.lab import control_plane
from shipyard.lab.state import LAB_PREVIEW_RECONCILE_INTERVAL, LabState, load_state


def test_the_interval_survives_a_round_trip_through_lab_json(tmp_path: Path) -> None:
    assert LabState(root=str(tmp_path)).preview_reconcile_interval == LAB_PREVIEW_RECONCILE_INTERVAL
    LabState(root=str(tmp_path), preview_reconcile_interval=1.5).save()
    assert load_state(tmp_path).preview_reconcile_interval == 1.5


def test_every_start_of_the_controller_gets_the_labs_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(
        control_plane, "shipyard_process", lambda args, log, env: started.append(args) or 4242
    )
    monkeypatch.setattr(control_plane, "wait_http", lambda *args, **kwargs: None)
    monkeypatch.setattr(control_plane, "builder_environment", lambda state: {})
    state = LabState(root=str(tmp_path), preview_reconcile_interval=2.5)
    state.save()
    control_plane.start_controller(state)
    control_plane.start_controller(load_state(tmp_path))  # a restart reads lab.json again
    for args in started:
        assert args[args.index("--preview-reconcile-interval") + 1] == "2.5"
    assert len(started) == 2


@pytest.mark.parametrize("interval", ["0", "0.05", "-1", "7200"])
def test_an_interval_out_of_range_is_refused_before_anything_starts(tmp_path: Path, interval: str) -> None:
    lab = tmp_path / "lab"
    result = CliRunner().invoke(
        app, ["lab", "up", "--preview-reconcile-interval", interval, "--dir", str(lab)]
    )
    assert result.exit_code != 0
    assert f"--preview-reconcile-interval {float(interval):g} is out of range" in result.output
    assert not lab.exists()
