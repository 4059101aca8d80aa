"""The console script: host commands load only what they use, everything else the full app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules a host command never needs: the fleet's server side, builds, the lab, the pipeline, and
# the heavy libraries behind them.
NOT_FOR_HOST_COMMANDS = (
    "shipyard.imaging",
    "shipyard.lab",
    "shipyard.pipeline",
    "shipyard.controller.server.app",
    "shipyard.fleet_api.client",
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


# What a plain `shipyard rollback` on this host does without: the CLI framework, rich (its output is
# not a terminal here) and the docker SDK with its HTTP stack.
NOT_FOR_HOST_ROLLBACK = (
    *NOT_FOR_HOST_COMMANDS,
    "typer",
    "click",
    "rich",
    "shipyard.cli.host_cmd",
    "shipyard.cli.fleet_cmd",
    "docker",
    "requests",
    "urllib3",
    "cryptography",
    "shipyard.signing",
)


def test_rollback_loads_only_what_a_host_rollback_uses(tmp_path: Path) -> None:
    # No shipyard.yml here: the command gets as far as loading it, then says what is wrong.
    code, modules, output = _run("rollback", cwd=tmp_path)

    assert code == 2
    assert "shipyard.yml not found" in output
    assert "Traceback" not in output
    assert "shipyard.cli.host_actions" in modules
    assert [name for name in NOT_FOR_HOST_ROLLBACK if _loaded(modules, name)] == []


def test_other_host_commands_load_only_the_host_commands(tmp_path: Path) -> None:
    code, modules, output = _run("status", cwd=tmp_path)

    assert code == 2
    assert "shipyard.yml not found" in output
    assert "shipyard.cli.host_cmd" in modules
    assert [name for name in NOT_FOR_HOST_COMMANDS if _loaded(modules, name)] == []


def test_unusual_rollback_arguments_go_to_typer_with_its_messages(tmp_path: Path) -> None:
    code, modules, output = _run("rollback", "--no-such-flag", cwd=tmp_path)

    assert code == 2
    assert "No such option" in output
    assert "shipyard.cli.host_cmd" in modules


def test_fast_rollback_fails_like_the_typer_command(tmp_path: Path) -> None:
    """Same message, stream and exit code whichever path parsed the arguments."""
    (tmp_path / "shipyard.yml").write_text("app: Bad Name\nimage: registry:5000/web\n")
    fast = subprocess.run(
        [sys.executable, "-m", "shipyard", "rollback", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    typer_app = subprocess.run(
        [
            sys.executable,
            "-c",
            "from shipyard.cli.entry import host_app; host_app()()",
            "rollback",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert fast.returncode == typer_app.returncode == 2
    assert fast.stderr == typer_app.stderr
    assert fast.stderr.startswith("error: shipyard.yml is invalid (1 problem): app: must be 1 to 40")
    assert fast.stdout == typer_app.stdout == ""


def test_host_command_help_comes_from_the_host_app(tmp_path: Path) -> None:
    code, modules, output = _run("rollback", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "Swap back to the previous release" in output
    assert not _loaded(modules, "shipyard.cli.lab_cmd")


def test_other_commands_get_the_full_app(tmp_path: Path) -> None:
    code, modules, output = _run("lab", "--help", cwd=tmp_path)

    assert code == 0, output
    assert "shipyard.cli.lab_cmd" in modules


def test_host_rollback_arguments_are_read_as_typer_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.cli.entry import HostRollback, parse_host_rollback

    for name in ("SHIPYARD_POLICY", "SHIPYARD_CA_FILE", "SHIPYARD_INSECURE_HTTP"):
        monkeypatch.delenv(name, raising=False)
    assert parse_host_rollback([]) == HostRollback()
    assert parse_host_rollback(["r3", "-c", "x/shipyard.yml", "--json", "--wait"]) == HostRollback(
        release="r3", config=Path("x/shipyard.yml"), as_json=True, wait=True
    )
    assert parse_host_rollback(["--config", "a.yml", "--dry-run", "--policy", "p.yml", "r1"]) == HostRollback(
        release="r1", config=Path("a.yml"), dry_run=True, policy_file=Path("p.yml")
    )
    monkeypatch.setenv("SHIPYARD_POLICY", "/etc/p.yml")
    assert parse_host_rollback([]) == HostRollback(policy_file=Path("/etc/p.yml"))
    assert parse_host_rollback(["--policy", "q.yml"]) == HostRollback(policy_file=Path("q.yml"))


def test_anything_else_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.cli.entry import parse_host_rollback

    for name in ("SHIPYARD_POLICY", "SHIPYARD_CA_FILE", "SHIPYARD_INSECURE_HTTP"):
        monkeypatch.delenv(name, raising=False)
    for args in (
        ["--help"],
        ["--env", "production"],
        ["-e", "staging"],
        ["--ca-file", "ca.pem"],
        ["--insecure-http"],
        ["--config=a.yml"],
        ["--config"],
        ["--config", "--json"],
        ["r1", "r2"],
        ["--", "r1"],
        ["-x"],
    ):
        assert parse_host_rollback(args) is None, args
    monkeypatch.setenv("SHIPYARD_INSECURE_HTTP", "maybe")  # Typer checks the value
    assert parse_host_rollback([]) is None
