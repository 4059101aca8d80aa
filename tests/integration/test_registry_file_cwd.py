"""`shipyard deploy` run from another directory logs in with the registry files next to shipyard.yml."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def test_deploy_from_another_directory_reads_the_login_next_to_shipyard_yml(
    app_home: AppHome, images: PushedImages, tmp_path: Path
) -> None:
    creds = app_home.root / "creds"
    creds.mkdir()
    (creds / "user").write_text(app_home.registry.username + "\n")
    (creds / "pass").write_text(app_home.registry.password + "\n")
    app_home.write_config(
        images,
        registry={
            "username_env": None,
            "password_env": None,
            "username_file": "creds/user",
            "password_file": "creds/pass",
        },
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = subprocess.run(
        app_home.argv("deploy", images.ref("v1")),
        cwd=elsewhere,
        env=app_home.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert httpx.get(app_home.listen_url + "/version", timeout=5).text.strip() == "v1"
    assert app_home.registry.password not in done.stdout + done.stderr
