"""The full app registers its commands lazily: a command's module is imported when it runs or --help
lists it, never merely because the app started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shipyard.cli.main import LAZY_COMMANDS

PROBE = """
import json, sys
from shipyard.cli.main import app
try:
    app(sys.argv[1:], prog_name="shipyard")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
COMMAND_MODULES = sorted({module for module, _, _ in LAZY_COMMANDS.values()})


def run_app(*args: str, cwd: Path) -> tuple[int, set[str], str]:
    # COLUMNS: --help's table wide enough that every command name stays on one line
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    document = json.loads(completed.stdout.strip().splitlines()[-1])
    return document["code"], set(document["modules"]), completed.stdout + completed.stderr


def test_a_command_imports_its_own_module_and_no_other_command_module(tmp_path: Path) -> None:
    code, modules, output = run_app("hosts", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "Hosts known to the controller" in output
    assert [module for module in COMMAND_MODULES if module in modules] == ["shipyard.cli.fleet_cmd"]


def test_the_app_alone_imports_no_command_module(tmp_path: Path) -> None:
    code, modules, output = run_app("version", cwd=tmp_path)

    assert code == 0, output
    assert [module for module in COMMAND_MODULES if module in modules] == []


def test_help_lists_every_command(tmp_path: Path) -> None:
    code, modules, output = run_app("--help", cwd=tmp_path)

    assert code == 0, output
    listed = {
        line.split()[1] for line in output.splitlines() if line.startswith("│ ") and len(line.split()) > 2
    }
    assert set(LAZY_COMMANDS) | {"init", "config", "version"} <= listed
    assert set(COMMAND_MODULES) <= modules


def test_a_group_and_its_sub_commands_resolve(tmp_path: Path) -> None:
    code, modules, output = run_app("secrets", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "shipyard.cli.secrets_cmd" in modules and "shipyard.cli.lab_cmd" not in modules
    assert "set" in output
