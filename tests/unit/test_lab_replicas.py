"""The lab's controller replicas: recorded in lab.json, refused on SQLite before anything starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.lab.state import ControllerRecord, LabState, load_state


def test_replicas_survive_a_round_trip_through_lab_json(tmp_path: Path) -> None:
    state = LabState(root=str(tmp_path), controller_port=9000, controller_pid=11)
    state.extra_controllers.append(ControllerRecord(port=9001, pid=12))
    state.database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/lab"
    state.save()
    loaded = load_state(tmp_path)
    assert loaded.controller_urls == ["https://127.0.0.1:9000", "https://127.0.0.1:9001"]
    assert loaded.controller_pids == [11, 12]
    assert loaded.database_url == state.database_url


def test_two_controllers_on_sqlite_are_refused_in_one_sentence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lab", "up", "--controllers", "2", "--dir", str(tmp_path / "lab")])
    assert result.exit_code != 0
    assert "controller replicas share a PostgreSQL database; add --db postgres." in result.output
    assert not (tmp_path / "lab").exists()  # nothing started


def test_an_unknown_database_is_refused_without_echoing_a_password(tmp_path: Path) -> None:
    database = "mysql://admin:hunter2@db/shipyard"
    result = CliRunner().invoke(app, ["lab", "up", "--db", database, "--dir", str(tmp_path / "lab")])
    assert result.exit_code != 0
    assert "--db 'mysql' is not sqlite, postgres or a postgresql:// URL" in result.output
    assert "hunter2" not in result.output
    assert not (tmp_path / "lab").exists()
