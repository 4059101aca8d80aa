"""The agent's pure parts: per-app plan, failure memory, backoff, spec localisation, token file."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_agent_fakes import desired_app

from shipyard.agent.backoff import Backoff
from shipyard.agent.identity import read_token, write_token
from shipyard.agent.localize import host_release, localized_snapshot, release_number
from shipyard.agent.plan import Converge, Deferred, FailureMemory, InSync, next_retry, plan_app, plan_apps
from shipyard.agent.ports import LocalApp
from shipyard.cli.agent_cmd import parse_labels
from shipyard.domain.spec import spec_from_snapshot
from shipyard.errors import ConfigError

PLAN_CASES = [
    (LocalApp(None), Converge, "new on this host"),
    (LocalApp("r1", running=True, healthy=True), Converge, "r1 serves, r2 is desired"),
    (LocalApp("r2", running=False), Converge, "not running"),
    (LocalApp("r2", running=True, healthy=False), InSync, ""),
    (LocalApp("r2", running=True, healthy=True), InSync, ""),
]


@pytest.mark.parametrize(("local", "kind", "reason"), PLAN_CASES)
def test_plan_app(local: LocalApp, kind: type, reason: str) -> None:
    action = plan_app(desired_app(release_id=2), local, FailureMemory(), now=0.0)
    assert isinstance(action, kind)
    if isinstance(action, Converge):
        assert reason in action.reason


def test_failure_memory_defers_with_doubling_delays_per_deployment() -> None:
    memory = FailureMemory(first_retry=10.0, max_retry=35.0)
    desired = desired_app(release_id=2, deployment_id=4)
    assert memory.record(desired, "boom", now=0.0).retry_at == 10.0
    assert memory.record(desired, "boom", now=10.0).retry_at == 30.0
    assert memory.record(desired, "boom", now=30.0).retry_at == 65.0
    actions = plan_apps([desired], {"web": LocalApp("r1", running=True)}, memory, now=40.0)
    assert isinstance(actions[0], Deferred) and actions[0].last_error == "boom"
    assert next_retry(actions) == 25.0
    assert memory.blocking(desired_app(release_id=2, deployment_id=5), now=40.0) is None
    memory.forget(desired)
    assert memory.blocking(desired, now=40.0) is None


def test_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() -> None:
    draws: list[tuple[float, float]] = []
    backoff = Backoff(base=1.0, cap=5.0, draw=lambda low, high: draws.append((low, high)) or high)
    delays = [backoff.next_delay() for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert draws[2] == (2.0, 4.0)
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_real_jitter_stays_within_bounds() -> None:
    backoff = Backoff(base=2.0, cap=2.0)
    assert all(1.0 <= backoff.next_delay() <= 2.0 for _ in range(50))


def test_the_spec_is_bound_to_the_hosts_address_keeping_the_ports() -> None:
    snapshot = desired_app().spec | {"port": 4000}
    local = localized_snapshot(snapshot, "127.0.1.3")
    spec = spec_from_snapshot(local)
    assert (spec.bind, spec.proxy.listen, spec.port) == ("127.0.1.3", "127.0.1.3:8080", 4000)
    assert localized_snapshot(snapshot, None) is snapshot
    assert snapshot["proxy"]["listen"] == "127.0.0.1:8080"  # the controller's snapshot is not changed


def test_a_controller_release_becomes_a_host_release_with_the_same_name() -> None:
    release = host_release(desired_app(release_id=12), "127.0.1.2", datetime.now(UTC))
    assert (release.id, release.app_spec.bind, release.created_by) == ("r12", "127.0.1.2", "controller")
    assert release.pinned_image.endswith("@" + desired_app().digest)
    assert release_number("r12") == 12 and release_number("x") is None and release_number(None) is None


def test_the_agent_token_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "agent-token"
    assert read_token(path) is None
    write_token(path, "syg_secret")
    assert read_token(path) == "syg_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_labels_parse_and_bad_ones_say_how_to_write_them() -> None:
    assert parse_labels(["zone=a", "tier=web=1"]) == {"zone": "a", "tier": "web=1"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_labels(["zone"])
