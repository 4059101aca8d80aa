"""This host's Docker Engine, haproxy, kernel and shipyard versions, read from the components themselves."""

from __future__ import annotations

import platform
import re
import subprocess

from shipyard import __version__
from shipyard.domain.spec import AppSpec
from shipyard.domain.versions import unmet_requirements
from shipyard.errors import PolicyError, ShipyardError
from shipyard.fleet_api.schemas.agent import HostVersions
from shipyard.host.context import HostContext

_HAPROXY_VERSION = re.compile(r"(?:HAProxy|HA-Proxy) version (\S+)")


def haproxy_version(binary: str) -> str:
    """`haproxy -v`'s version ("2.6.12-1+deb12u1"); empty when haproxy cannot be run."""
    try:
        done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = _HAPROXY_VERSION.search(done.stdout + done.stderr)
    return found.group(1) if found else ""


def docker_version(context: HostContext) -> str:
    """The Engine's own version ("20.10.24+dfsg1"); empty when it does not answer."""
    try:
        engine = context.engine
        answer = engine.call("reading the Docker Engine version", engine.client.version)
    except ShipyardError:
        return ""
    return str(answer.get("Version", ""))


def detect_versions(context: HostContext) -> HostVersions:
    return HostVersions(
        docker=docker_version(context)[:64],
        haproxy=haproxy_version(context.proxy.binary)[:64],
        kernel=platform.release()[:128],
        shipyard=__version__,
    )


def enforce_requirements(spec: AppSpec, versions: HostVersions, *, release: str) -> None:
    """Raise PolicyError when the release requires engine or haproxy versions this host does not run."""
    unmet = unmet_requirements(spec.requires.as_dict(), versions.model_dump())
    if unmet:
        raise PolicyError(
            f"this host refuses release {release} of {spec.app}: "
            + "; ".join(unmet)
            + "; nothing was changed. Upgrade the host (see 'shipyard host bootstrap') or change requires:.",
            details=unmet,
        )
