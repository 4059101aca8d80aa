"""`processes:` in shipyard.yml: web and workers, their defaults, their errors with the key path."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.domain.spec import AppSpec, parse_spec, spec_from_snapshot, spec_snapshot
from shipyard.errors import ConfigError

BASE: dict[str, Any] = {"app": "shop", "image": "registry:5000/shop"}


def spec(**extra: Any) -> AppSpec:
    return parse_spec({**BASE, **extra})


def refused(processes: Any, **extra: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        spec(processes=processes, **extra)
    return str(caught.value)


def test_a_config_without_processes_is_a_single_web_process_as_before() -> None:
    plain = spec(command=["serve"])
    assert plain.processes == {} and plain.workers == {} and plain.web_command == ["serve"]
    assert "processes" not in spec_snapshot(plain)
    assert spec_from_snapshot(spec_snapshot(plain)) == plain


def test_a_worker_takes_its_defaults_from_deploy() -> None:
    shop = spec(
        deploy={"stop_timeout": 42},
        processes={"web": {"command": ["puma"]}, "worker": {"command": ["bundle", "exec", "sidekiq"]}},
    )
    worker = shop.workers["worker"]
    assert list(shop.workers) == ["worker"] and shop.web_command == ["puma"]
    assert worker.stop_signal == "TERM" and shop.worker_stop_timeout(worker) == 42
    assert shop.worker_health(worker).running_for == 5.0
    assert spec_from_snapshot(spec_snapshot(shop)) == shop  # the release's snapshot reads back


def test_signals_are_normalised_and_health_and_hosts_kept() -> None:
    worker = spec(
        processes={
            "mailer": {
                "command": ["mail"],
                "stop_signal": "sigtstp",
                "stop_timeout": 600,
                "health": {"exec": ["test", "-f", "/tmp/ok"]},
                "hosts": {"role": "jobs"},
            }
        }
    ).workers["mailer"]
    assert worker.stop_signal == "TSTP" and worker.stop_timeout == 600
    assert worker.health is not None and worker.health.exec == ["test", "-f", "/tmp/ok"]
    assert worker.runs_on({"role": "jobs", "zone": "a"}) and not worker.runs_on({"role": "web"})
    assert not worker.runs_on({}) and worker.runs_on(None)  # None: a host without fleet labels


@pytest.mark.parametrize(
    ("processes", "expected"),
    [
        ({"Worker": {"command": ["x"]}}, "processes: 'Worker' is not a process name"),
        ({"worker": {}}, "processes: the worker process needs a command"),
        (
            {"worker": {"command": ["x"], "stop_signal": "KILL"}},
            "processes.worker.stop_signal: must be a signal",
        ),
        (
            {"worker": {"command": ["x"], "stop_signal": "TERM\n"}},
            "processes.worker.stop_signal: must be a signal",
        ),
        ({"worker": {"command": ["x"], "stop_timeout": 86401}}, "processes.worker.stop_timeout"),
        ({"worker": {"command": ["x"], "health": {}}}, "processes.worker.health: give exactly one of exec"),
        (
            {"worker": {"command": ["x"], "health": {"exec": ["a"], "running_for": 3}}},
            "processes.worker.health: give exactly one of exec",
        ),
        ({"worker": {"command": ["x"], "health": {"running_for": 0}}}, "processes.worker.health.running_for"),
        ({"worker": {"command": ["x"], "cmd": ["y"]}}, "processes.worker.cmd: unknown key"),
        ({"web": {"health": {"running_for": 3}}}, "processes: web takes only 'command' (health given)"),
        ({"worker": {"command": ["x"], "hosts": {"bad key": "v"}}}, "processes.worker.hosts"),
        ({"worker": {"command": []}}, "processes.worker.command"),
        (["worker"], "processes: must be a valid dictionary"),
    ],
)
def test_a_wrong_process_is_one_sentence_with_its_key_path(processes: Any, expected: str) -> None:
    message = refused(processes)
    assert expected in message, message
    assert "\n" not in message and "Traceback" not in message


def test_web_command_given_twice_is_refused() -> None:
    message = refused({"web": {"command": ["a"]}}, command=["b"])
    assert "give web's command once" in message
