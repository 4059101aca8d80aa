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
