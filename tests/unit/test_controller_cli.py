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
    from shipyard.controller.db import claim_sqlite_file

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
