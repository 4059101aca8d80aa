"""Versions beneath the apps: release requirements and skew across a group, as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.domain.spec import parse_spec, spec_from_snapshot, spec_snapshot
from shipyard.domain.versions import release_number, unmet_requirements, version_skew
from shipyard.errors import ConfigError, PolicyError
from shipyard.fleet_api.schemas.agent import HostVersions
from shipyard.host.versions import enforce_requirements

DEBIAN = {"docker": "20.10.24+dfsg1", "haproxy": "2.6.12-1+deb12u1", "kernel": "6.1.0-18-amd64"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.6.12-1+deb12u1", "2.6.12"),
        ("20.10.24+dfsg1", "20.10.24"),
        ("v27.3.1", "27.3.1"),
        ("6.1.0-18", "6.1.0"),
    ],
)
def test_release_number_of_distribution_versions(text: str, expected: str) -> None:
    number = release_number(text)
    assert number is not None and str(number) == expected


def test_release_number_of_garbage_is_none() -> None:
    assert release_number("") is None
    assert release_number("unknown") is None


def test_requirements_met_and_unmet() -> None:
    assert unmet_requirements({"haproxy": ">=2.6", "docker": ">=20"}, DEBIAN) == []
    unmet = unmet_requirements({"haproxy": ">=2.8", "docker": ">=24"}, DEBIAN)
    assert unmet == [
        "docker >=24 is required but this host runs docker 20.10.24+dfsg1",
        "haproxy >=2.8 is required but this host runs haproxy 2.6.12-1+deb12u1",
    ]


def test_unknown_version_does_not_meet_a_requirement() -> None:
    assert unmet_requirements({"docker": ">=24"}, {"docker": ""}) == [
        "docker >=24 is required but this host's docker version is unknown"
    ]


def test_spec_requires_is_validated_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec({"app": "web", "image": "r/web", "requires": {"haproxy": "two point six"}})
    assert "requires.haproxy" in str(caught.value)
    with pytest.raises(ConfigError) as unknown:
        parse_spec({"app": "web", "image": "r/web", "requires": {"nginx": ">=1"}})
    assert "requires.nginx" in str(unknown.value)


def test_snapshot_carries_requires_only_when_set() -> None:
    plain = parse_spec({"app": "web", "image": "r/web"})
    assert "requires" not in spec_snapshot(plain)
    pinned = parse_spec({"app": "web", "image": "r/web", "requires": {"haproxy": ">=2.6"}})
    snapshot = spec_snapshot(pinned)
    assert snapshot["requires"] == {"haproxy": ">=2.6"}
    assert spec_snapshot(spec_from_snapshot(snapshot)) == snapshot


def test_host_outside_the_requirements_refuses_the_release() -> None:
    spec = parse_spec({"app": "web", "image": "r/web", "requires": {"haproxy": ">=2.8"}})
    with pytest.raises(PolicyError) as caught:
        enforce_requirements(spec, HostVersions(**DEBIAN), release="r7")
    message = str(caught.value)
    assert message.startswith("this host refuses release r7 of web: haproxy >=2.8 is required")
    assert "nothing was changed" in message
    enforce_requirements(parse_spec({"app": "web", "image": "r/web"}), HostVersions(), release="r7")


def test_skew_marks_the_odd_host_out() -> None:
    hosts = {
        "a": {**DEBIAN, "shipyard": "0.1.0"},
        "b": {**DEBIAN, "shipyard": "0.1.0"},
        "c": {**DEBIAN, "haproxy": "2.8.5-1", "shipyard": "0.1.0"},
    }
    assert version_skew(hosts) == {"a": [], "b": [], "c": ["haproxy"]}


def test_skew_tie_takes_the_newest_as_reference_and_ignores_unknown() -> None:
    hosts = {"a": {"docker": "24.0.5"}, "b": {"docker": "20.10.24"}, "c": {"docker": ""}, "d": {}}
    assert version_skew(hosts) == {"a": [], "b": ["docker"], "c": [], "d": []}


def test_agent_refuses_before_storing_anything(tmp_path: Path) -> None:
    from shipyard.agent.local_host import LocalHost
    from shipyard.fleet_api.schemas.agent import DesiredApp
    from shipyard.host.context import HostContext

    spec = spec_snapshot(parse_spec({"app": "web", "image": "r/web", "requires": {"docker": ">=24"}}))
    desired = DesiredApp(
        app="web",
        release_id=7,
        release="r7",
        image="r/web",
        digest="sha256:" + "ab" * 32,
        spec=spec,
        deployment_id=1,
    )
    context = HostContext(home=tmp_path)
    host = LocalHost(context, versions=HostVersions(**DEBIAN))
    try:
        with pytest.raises(
            PolicyError, match=r"docker >=24 is required but this host runs docker 20\.10\.24"
        ):
            host.converge(desired, reporter=lambda *_: None)  # type: ignore[arg-type]
        assert context.store.apps() == []
        assert "engine" not in context.__dict__  # nothing pulled or started: Docker never touched
    finally:
        context.close()


def test_hosts_table_marks_skewed_versions() -> None:
    from datetime import UTC, datetime

    from shipyard.cli.fleet_cmd import _version_cell, skew_summary
    from shipyard.fleet_api.schemas.fleet import HostOut

    def host(name: str, haproxy: str, skew: list[str]) -> HostOut:
        now = datetime.now(UTC)
        versions = {**DEBIAN, "haproxy": haproxy, "shipyard": "0.1.0"}
        return HostOut(
            name=name,
            address="",
            labels={},
            group="production",
            status="ready",
            last_seen=now,
            agent_version="0.1.0",
            registered_at=now,
            apps=[],
            versions=versions,
            skew=skew,
        )

    usual, odd = host("h1", "2.6.12-1+deb12u1", []), host("h2", "2.8.5-1", ["haproxy"])
    assert _version_cell(usual, "haproxy") == "2.6.12-1+deb12u1"
    assert _version_cell(odd, "haproxy") == "2.8.5-1 *"
    assert _version_cell(odd, "docker") == "20.10.24+dfsg1"
    assert _version_cell(host("h3", "", []), "haproxy") == "?"
    assert skew_summary([usual, odd]) == (
        "version skew (marked *, differs from most hosts of its group): h2 (haproxy)"
    )
    assert skew_summary([usual]) is None
