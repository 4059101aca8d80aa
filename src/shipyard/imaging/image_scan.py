"""`shipyard scan IMAGE`: look for secrets in any image, local or in the registry.

With a shipyard.yml at hand the scan also looks for the values of the env's secret store, of
the build secrets that are set and of the registry password, and logs in to pull the image if
the engine lacks it; without one it looks for key and token patterns only.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.adapters.buildkit import find_docker_cli
from shipyard.adapters.registry import Credentials, registry_credentials
from shipyard.domain.spec import AppSpec
from shipyard.imaging import metadata
from shipyard.imaging.build_secrets import available_build_secrets, known_secret_values
from shipyard.imaging.detectors import scan_rules
from shipyard.imaging.docker_session import docker_session
from shipyard.imaging.findings import ScanReport
from shipyard.imaging.scanner import scan_image
from shipyard.secrets.factory import open_store


def scan_for_secrets(image: str, spec: AppSpec | None, config_dir: Path, env: str) -> ScanReport:
    cli = find_docker_cli(spec.build.docker if spec else None)
    known: dict[str, str] = {}
    credentials: Credentials | None = None
    server = metadata.registry_server(image, spec.registry.server if spec else None)
    if spec is not None:
        store = open_store(spec.secrets, config_dir, env)
        credentials = registry_credentials(spec.registry, store, config_dir)
        build_values = available_build_secrets(spec.build.secrets, store, config_dir)
        known = known_secret_values(store, build_values, credentials)
    with docker_session(cli, server, credentials) as session:
        return scan_image(session, image, scan_rules(known), pull=True)
