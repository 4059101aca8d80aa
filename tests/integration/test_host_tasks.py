"""The release phase, `shipyard run` and `shipyard exec` on one host: a real Docker Engine and haproxy."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from shipyard.lab.single_host import AppHome, PushedImages

pytestmark = pytest.mark.integration


def shipyard(home: AppHome, *args: str) -> subprocess.CompletedProcess[str]:
    """`shipyard ARGS`, with --config before any `--` (after it, everything is the command's)."""
    command, separator, rest = list(args), [], []
    if "--" in args:
        at = args.index("--")
        command, separator, rest = list(args[:at]), ["--"], list(args[at + 1 :])
    argv = [*home.argv(*command), *separator, *rest]
    return subprocess.run(argv, cwd=home.root, env=home.env(), capture_output=True, text=True, timeout=120)


def version(home: AppHome) -> str:
    return httpx.get(home.listen_url + "/version", timeout=5).text.strip()


def test_the_release_phase_runs_before_the_swap_and_a_failure_changes_nothing(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(
        images, release=["sh", "-c", 'echo "migrating $SHIPYARD_RELEASE for $SHIPYARD_APP"']
    )
    app_home.run("deploy", images.ref("v1"))
    assert version(app_home) == "v1"
    assert f"migrating r1 for {app_home.app}" in (app_home.home / "shipyard.log").read_text()

    app_home.write_config(images, release=["sh", "-c", "echo 'relation exists' >&2; exit 4"])
    failed = app_home.run("deploy", images.ref("v2"), check=False)
    assert failed.returncode != 0
    assert "the release command 'sh -c" in failed.stderr + failed.stdout
    assert "exited with 4; the new release was not started" in failed.stderr + failed.stdout
    assert version(app_home) == "v1"
    assert "relation exists" in (app_home.home / "shipyard.log").read_text()  # kept though it failed


def test_run_and_exec_on_this_host_return_the_output_and_exit_code(
    app_home: AppHome, images: PushedImages
) -> None:
    app_home.write_config(images, env={"clear": {"GREETING": "hello"}})
    refused = shipyard(app_home, "run", "--", "true")
    assert refused.returncode != 0 and "no active release on this host" in refused.stderr
    app_home.run("deploy", images.ref("v1"))

    ran = shipyard(app_home, "run", "--", "sh", "-c", 'echo "$GREETING from $SHIPYARD_RELEASE"; exit 5')
    assert (ran.returncode, ran.stdout) == (5, "hello from r1\n"), ran.stderr
    inside = shipyard(app_home, "exec", "--", "cat", "/www/version")
    assert (inside.returncode, inside.stdout) == (0, "v1\n"), inside.stderr
    failing = shipyard(app_home, "exec", "--", "sh", "-c", "exit 3")
    assert failing.returncode == 3
    elsewhere = shipyard(app_home, "exec", "--host", "web-9", "--", "bin/rails", "console")
    assert elsewhere.returncode != 0
    hint = "shipyard exec --env E --host web-9 -it -- bin/rails console"
    assert hint in " ".join(elsewhere.stderr.split())
    assert version(app_home) == "v1"
