"""The distribution's package versions, as `apt-cache policy` reports them (the pins a bootstrap writes)."""

from __future__ import annotations

import subprocess

from shipyard.errors import ConfigError


def parse_policy(text: str) -> dict[str, str]:
    """Package -> the version to pin: the installed one, else the candidate. Pure, for tests."""
    found: dict[str, dict[str, str]] = {}
    package = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            package = line.rstrip()[:-1]
            found[package] = {}
        elif package and line.strip().startswith(("Installed:", "Candidate:")):
            key, _, value = line.strip().partition(":")
            found[package][key] = value.strip()
    pins: dict[str, str] = {}
    for name, fields in found.items():
        for key in ("Installed", "Candidate"):
            value = fields.get(key, "")
            if value and value != "(none)":
                pins[name] = value
                break
    return pins


def distribution_versions(packages: list[str]) -> dict[str, str]:
    """The versions to pin for `packages` on this machine; ConfigError naming any it does not know."""
    try:
        done = subprocess.run(
            ["apt-cache", "policy", *packages], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"cannot run apt-cache ({exc}); run bootstrap on a Debian or Ubuntu machine, "
            "or pass --docker-version and --haproxy-version."
        ) from exc
    pins = parse_policy(done.stdout)
    missing = [package for package in packages if package not in pins]
    if missing:
        raise ConfigError(
            f"apt-cache policy knows no version of {', '.join(missing)}; run 'apt-get update', "
            "or pass --docker-version and --haproxy-version."
        )
    return pins
