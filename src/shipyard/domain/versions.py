"""Versions of what runs beneath the apps (Docker Engine, haproxy, kernel, shipyard): pure rules.

A release may require versions of the engine and haproxy (`requires:` in shipyard.yml, PEP 440
specifiers); a host outside them refuses it. Across a group, a host whose version differs from the
one most hosts run is marked as skewed, the drift that pinned base images exist to prevent.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

COMPONENTS = ("docker", "haproxy", "kernel", "shipyard")
REQUIRABLE = ("docker", "haproxy")
# The leading release number of a distribution's version: 2.6.12 in "2.6.12-1+deb12u1",
# 20.10.24 in "20.10.24+dfsg1", 6.1.0 in "6.1.0-18-amd64".
_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def release_number(text: str) -> Version | None:
    """The comparable release part of a version string; None when it has none."""
    found = _RELEASE.match(text)
    if found is None:
        return None
    try:
        return Version(found.group(1))
    except InvalidVersion:
        return None


def parse_specifier(text: str) -> SpecifierSet:
    """A PEP 440 specifier set such as ">=2.6" or ">=24,<28"; ValueError with a readable reason."""
    try:
        specifier = SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise ValueError(f"{text!r} is not a version specifier; write it like '>=2.6' or '>=24,<28'") from exc
    if not str(specifier):
        raise ValueError("is empty; write a version specifier like '>=2.6'")
    return specifier


def unmet_requirements(requires: Mapping[str, str], versions: Mapping[str, str]) -> list[str]:
    """One sentence per requirement the host's versions do not meet (an unknown version fails)."""
    unmet: list[str] = []
    for component, text in sorted(requires.items()):
        have = versions.get(component, "")
        number = release_number(have)
        if number is None:
            unmet.append(f"{component} {text} is required but this host's {component} version is unknown")
        elif not parse_specifier(text).contains(number, prereleases=True):
            unmet.append(f"{component} {text} is required but this host runs {component} {have}")
    return unmet


def _reference(values: list[str]) -> str:
    """The version most hosts run; among equally common ones, the newest."""
    counts = Counter(values)

    def rank(value: str) -> tuple[int, Version, str]:
        return counts[value], release_number(value) or Version("0"), value

    return max(counts, key=rank)


def version_skew(hosts: Mapping[str, Mapping[str, str]]) -> dict[str, list[str]]:
    """For each host of one group, the components whose version differs from the group's usual one.

    Unknown (empty) versions are neither a reference nor marked: an old agent that does not report
    them is not a drift."""
    skew: dict[str, list[str]] = {name: [] for name in hosts}
    for component in COMPONENTS:
        known = {name: v.get(component, "") for name, v in hosts.items() if v.get(component, "")}
        if len(set(known.values())) < 2:
            continue
        usual = _reference(list(known.values()))
        for name, value in known.items():
            if value != usual:
                skew[name].append(component)
    return skew
