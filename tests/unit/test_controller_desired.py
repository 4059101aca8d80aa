"""The desired-state rule for one app on one host, and the version fingerprint."""

from __future__ import annotations

import pytest

from shipyard.controller.engine import rollout
from shipyard.controller.store.desired import Choice, choose_release, version_of
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
