"""The desired-state rule for one app on one host, and the version fingerprint."""

from __future__ import annotations

import pytest

from shipyard.controller.engine import rollout
from shipyard.controller.store.desired import AppPlan, Choice, GroupPlan, choose_release, version_of
from shipyard.fleet_api.schemas.agent import DesiredApp

TARGET, CURRENT, DEPLOYMENT = 5, 4, 9


@pytest.mark.parametrize(
    ("status", "in_wave", "expected"),
    [
        (rollout.RUNNING, True, Choice(TARGET, DEPLOYMENT)),
        (rollout.RUNNING, False, Choice(CURRENT, None)),
        (rollout.PAUSED, True, Choice(TARGET, DEPLOYMENT)),
        (rollout.FAILED, True, Choice(TARGET, DEPLOYMENT)),
        (rollout.FAILED, False, Choice(CURRENT, None)),
        (rollout.SUCCEEDED, False, Choice(TARGET, DEPLOYMENT)),
        (rollout.ROLLED_BACK, True, Choice(CURRENT, None)),
        (rollout.ABORTED, True, Choice(CURRENT, None)),
    ],
)
def test_choose_release(status: str, in_wave: bool, expected: Choice) -> None:
    assert choose_release(status, TARGET, DEPLOYMENT, CURRENT, in_wave) == expected


def test_nothing_to_run_before_any_release_succeeded() -> None:
    assert choose_release(rollout.RUNNING, TARGET, DEPLOYMENT, None, in_started_wave=False) is None
    assert choose_release(rollout.ROLLED_BACK, TARGET, DEPLOYMENT, None, in_started_wave=True) is None


def _app(release_id: int) -> DesiredApp:
    return DesiredApp(
        app="web",
        release_id=release_id,
        release=f"r{release_id}",
        image="r/web",
        digest="sha256:x",
        spec={},
        deployment_id=None,
    )


def test_version_changes_with_the_content_only() -> None:
    assert version_of([_app(1)]) == version_of([_app(1)])
    assert version_of([_app(1)]) != version_of([_app(2)])
    assert 0 <= version_of([]) < 2**53, "must survive a JSON round trip through any client"


def test_a_new_prune_changes_the_version_and_no_prune_keeps_the_version_hosts_had() -> None:
    import hashlib
    import json

    plain = _app(1)
    before = json.dumps([[plain.app, plain.release_id, plain.digest, plain.deployment_id]], sort_keys=True)
    assert version_of([plain]) == int(hashlib.sha256(before.encode()).hexdigest()[:13], 16)
    pruned = [plain.model_copy(update={"prune": 3})]
    assert version_of(pruned) != version_of([plain])
    assert version_of(pruned) != version_of([plain.model_copy(update={"prune": 4})])


def _plan(group: str) -> GroupPlan:
    target = DesiredApp(
        app="wéb",
        release_id=TARGET,
        release=f"r{TARGET}",
        image="127.0.0.1:5000/web",
        digest="sha256:" + "5" * 64,
        spec={"env": {"GREETING": "grüß \u2028 <&>"}, "ports": [8080, 2.5, None, True]},
        deployment_id=None,
        signature="c2ln",
    )
    current = target.model_copy(update={"release_id": CURRENT, "release": f"r{CURRENT}", "signature": None})
    # Hosts 1 and 2 in the started wave 1, host 3 in wave 2, host 4 in no wave; a second app succeeded.
    rolling = AppPlan(rollout.RUNNING, TARGET, DEPLOYMENT, 1, CURRENT, {1: 1, 2: 1, 3: 2}, prune=6)
    done = AppPlan(rollout.SUCCEEDED, CURRENT, 8, 1, None, {})
    return GroupPlan(group, [rolling, done], {TARGET: target, CURRENT: current})


@pytest.mark.parametrize("group", ["production", 'grüppe "b"\\'])
def test_the_shared_answer_is_the_json_of_each_hosts_own_desired_state(group: str) -> None:
    plan = _plan(group)
    hosts = [(1, "web-1"), (2, 'wéb "2"\\\n'), (3, "web-3"), (4, "web-4"), (1, "renamed")]
    for host_id, name in hosts:
        state = plan.for_host(host_id, name)
        assert plan.json_for(host_id, name) == state.model_dump_json().encode()
        assert plan.version_for(host_id) == state.version
        assert (state.host, state.group) == (name, group)
    # Hosts choosing alike share the apps (and version); a host in another wave does not.
    assert plan.for_host(1, "web-1").apps == plan.for_host(2, "x").apps != plan.for_host(3, "web-3").apps
    assert plan.version_for(1) == plan.version_for(2) != plan.version_for(3)
    assert [a.release_id for a in plan.for_host(1, "web-1").apps] == [TARGET, CURRENT]
    assert [a.release_id for a in plan.for_host(3, "web-3").apps] == [CURRENT, CURRENT]
    assert plan.for_host(1, "web-1").apps[0].prune == 6
