"""The console script: host commands load only what they use, everything else the full app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Modules a host command never needs: the fleet's server side, builds, the lab, the pipeline, and
# the heavy libraries behind them.
NOT_FOR_HOST_COMMANDS = (
    "shipyard.imaging",
    "shipyard.lab",
    "shipyard.pipeline",
    "shipyard.controller.app",
    "shipyard.controller.client",
    "shipyard.cli.build_cmd",
    "shipyard.cli.lab_cmd",
    "shipyard.secrets.store",
    "shipyard.logs",
    "structlog",
    "pygments",
    "fastapi",
    "sqlalchemy",
    "httpx",
)

PROBE = """
import json, sys
from shipyard.cli import entry
try:
    entry.run(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False, cwd=cwd
    )
    last = completed.stdout.strip().splitlines()[-1]
    document = json.loads(last)
    return document["code"], document["modules"], completed.stdout + completed.stderr


def _loaded(modules: list[str], prefix: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for name in modules)


def test_rollback_loads_only_the_host_commands(tmp_path: Path) -> None:
    # No shipyard.yml here: the command gets as far as loading it, then says what is wrong.
    code, modules, output = _run("rollback", cwd=tmp_path)

    assert code == 2
    assert "shipyard.yml not found" in output
    assert "Traceback" not in output
    assert "shipyard.cli.host_cmd" in modules
    assert [name for name in NOT_FOR_HOST_COMMANDS if _loaded(modules, name)] == []


def test_host_command_help_comes_from_the_host_app(tmp_path: Path) -> None:
    code, modules, output = _run("rollback", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "Swap back to the previous release" in output
    assert not _loaded(modules, "shipyard.cli.lab_cmd")


def test_other_commands_get_the_full_app(tmp_path: Path) -> None:
    code, modules, output = _run("lab", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "shipyard.cli.lab_cmd" in modules
