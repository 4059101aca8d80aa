"""The lab registry's htpasswd file is written 0600, even over a looser file left from an earlier run."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from shipyard.lab.registry_server import start_registry

pytestmark = pytest.mark.integration


def test_the_registry_htpasswd_is_0600_over_a_looser_file(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("stale:entry\n")
    htpasswd.chmod(0o644)
    registry = start_registry(tmp_path, username="lab", password="lab-password")
    try:
        assert stat.S_IMODE(htpasswd.stat().st_mode) == 0o600
        assert htpasswd.read_text().startswith("lab:")
        # The registry reads it: the right password is let in, no password is not.
        assert httpx.get(f"{registry.url}/v2/", timeout=5).status_code == 401
        assert httpx.get(f"{registry.url}/v2/", auth=("lab", "lab-password"), timeout=5).status_code == 200
    finally:
        registry.stop()
