"""A host installs shipyard without the controller's dependencies: the layers' imports say so.

shipyard.fleet_api (clients, API bodies) and shipyard.agent import nothing of the controller; the
controller's pure engine imports neither its store nor its server, the store not the server. Checked
on the source (every import, lazy ones included) and by importing the host's code in a fresh
interpreter, where none of the controller's libraries may end up loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import shipyard
from shipyard.cli.controller_cmd import CONTROLLER_EXTRA_MODULES

SRC = Path(shipyard.__file__).parent
SERVER_LIBRARIES = ("fastapi", "starlette", "sqlalchemy", "alembic", "psycopg", "uvicorn", "jinja2")
# What the agent and a host's CLI load: `shipyard agent`, the host commands, the fleet client commands.
HOST_MODULES = (
    "shipyard.agent.loop",
    "shipyard.agent.runner",
    "shipyard.cli.agent_cmd",
    "shipyard.cli.host_cmd",
    "shipyard.cli.entry",
    "shipyard.cli.fleet_cmd",
    "shipyard.cli.pipeline_cmd",
    "shipyard.fleet_api.client",
    "shipyard.fleet_api.pipeline_client",
)
# package -> the packages (and top-level libraries) none of its modules may import.
FORBIDDEN = {
    "shipyard.fleet_api": ("shipyard.controller", *CONTROLLER_EXTRA_MODULES),
    "shipyard.agent": ("shipyard.controller", *CONTROLLER_EXTRA_MODULES),
    "shipyard.controller.engine": (
        "shipyard.controller.store",
        "shipyard.controller.server",
        *CONTROLLER_EXTRA_MODULES,
    ),
    "shipyard.controller.store": ("shipyard.controller.server",),
}


def _modules(package: str) -> list[Path]:
    return sorted((SRC.parent / package.replace(".", "/")).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(SRC.parent)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if any(_within(name, bad) for bad in forbidden)
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_may_not(package: str) -> None:
    assert _modules(package), f"{package} has no modules: the check would pass vacuously"
    assert layer_violations(package, FORBIDDEN[package]) == []


def test_the_layer_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from shipyard.controller.store import db\n    import fastapi.routing\n")

    names = _imports(module)

    assert any(_within(name, "shipyard.controller.store") for name in names)
    assert any(_within(name, "fastapi") for name in names)


PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_host_code_loads_none_of_the_controller_libraries() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *HOST_MODULES], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])

    assert set(HOST_MODULES) <= set(loaded)
    assert [name for name in loaded if name.partition(".")[0] in SERVER_LIBRARIES] == []
    assert [name for name in loaded if _within(name, "shipyard.controller")] == []


# Runs the CLI as if the controller extra were not installed: its libraries cannot be imported.
WITHOUT_EXTRA = """
import sys
from importlib.abc import MetaPathFinder

class Uninstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Uninstalled())
from shipyard.cli import entry
entry.run(sys.argv[1:])
"""


@pytest.mark.parametrize("command", ["controller", "job-worker"])
def test_the_controller_without_its_extra_says_how_to_install_it(command: str, tmp_path: Path) -> None:
    script = WITHOUT_EXTRA.format(blocked=set(SERVER_LIBRARIES))
    completed = subprocess.run(
        [sys.executable, "-c", script, command, "--db", f"sqlite:///{tmp_path / 'c.db'}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"},
    )
    output = " ".join((completed.stdout + completed.stderr).split())

    assert completed.returncode != 0
    assert "Traceback" not in output
    assert f"'shipyard {command}' needs the controller's dependencies" in output
    assert "pip install 'shipyard[controller]'" in output
    assert list(tmp_path.iterdir()) == []  # nothing created: no database, no token file
