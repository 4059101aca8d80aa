"""`shipyard controller` refuses bad options in one sentence, before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-body", "0"], "--max-body '0' is not a size from 1 byte to 1GiB"),
        (["--max-body", "lots"], "--max-body 'lots' is not a size from 1 byte to 1GiB"),
        (["--db", "mysql://db/shipyard"], "unsupported database URL scheme in 'mysql'"),
    ],
)
def test_a_bad_option_is_one_sentence_and_exit_code_2(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = runner.invoke(app, ["controller", "--db", f"sqlite:///{tmp_path}/c.db", *options])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_second_controller_on_one_sqlite_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    from shipyard.controller.store.db import claim_sqlite_file

    url = f"sqlite:///{tmp_path}/c.db"
    held = claim_sqlite_file(url)  # as the first controller holds it while it runs
    try:
        result = runner.invoke(app, ["controller", "--db", url])
    finally:
        assert held is not None
        held.close()
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert f"another controller already runs on {tmp_path}/c.db; run one controller per SQLite file" in (
        result.output
    )
    released = claim_sqlite_file(url)  # and once it stops, the file is free again
    assert released is not None
    released.close()


def test_a_bad_job_worker_option_is_one_sentence_and_exit_code_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["job-worker", "--db", "mysql://db/shipyard"])
    assert result.exit_code == 2 and "unsupported database URL scheme in 'mysql'" in result.output
    result = runner.invoke(app, ["job-worker", "--db", f"sqlite:///{tmp_path}/c.db", "--nice", "25"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_prune_env_without_a_controller_says_how_to_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_CONTROLLER", raising=False)
    config = tmp_path / "shipyard.yml"
    config.write_text("app: web\nimage: 127.0.0.1:5000/web\nproxy: {listen: '127.0.0.1:8080'}\n")
    result = runner.invoke(app, ["prune", "--env", "production", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "--env prunes every host of the environment through the controller" in result.output
    result = runner.invoke(app, ["prune", "--env", "prod\nuction", "--config", str(config)])
    assert result.exit_code == 2 and "--env" in result.output and "Traceback" not in result.output
