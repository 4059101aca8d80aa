"""Deploys and rollbacks through the controller across the lab, under load through the edge."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from shipyard.lab.load import LoadGenerator

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def test_deploy_v1_then_v2_then_roll_back_with_no_failed_request(lab: Lab) -> None:
    config = lab.write_config("waves", max_parallel="50%", monitor=1)
    image = lab.state.image
    first = lab.cli("deploy", f"{image}:v1", "--env", "production", "-c", str(config), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["status"] == "succeeded"
    wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to join the edge")
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        time.sleep(0.5)
        second = lab.cli("deploy", f"{image}:v2", "--env", "production", "-c", str(config), "--json")
        assert second.returncode == 0, second.stdout + second.stderr
        deployment = json.loads(second.stdout)
        assert (deployment["status"], deployment["total_waves"]) == ("succeeded", 2)
        assert current_version(lab) == "v2"
        back = lab.cli("rollback", "--env", "production", "-c", str(config), "--json")
        assert back.returncode == 0, back.stdout + back.stderr
        assert json.loads(back.stdout)["release_id"] == json.loads(first.stdout)["release_id"]
        time.sleep(0.5)
    assert current_version(lab) == "v1"
    assert load.stats.failed == 0, load.stats.failures
    assert load.stats.bodies["v2"] > 0 and load.stats.bodies["v1"] > 0
    assert set(load.stats.bodies) == {"v1", "v2"}


def test_a_release_failing_its_health_check_fails_the_wave_and_is_rolled_back(serving_lab: Lab) -> None:
    lab = serving_lab
    before = current_version(lab)
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        deployment = lab.start_deployment("broken", max_parallel="1", monitor=1, auto_rollback=True)
        finished = lab.wait_deployment(deployment.id)
        time.sleep(0.5)
    assert finished.status == "rolled_back", finished.message
    first, *others = finished.hosts
    assert (first.wave, first.outcome) == (1, "failed")
    assert "health check" in first.message
    assert {host.outcome for host in others} == {"waiting"}  # later waves never started
    assert current_version(lab) == before
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) == {before}
    with lab.client() as client:
        reported = {host.name: host.apps[0] for host in client.hosts("production")}
    # The rollback made the previous release desired again, which the failed host never stopped serving.
    assert reported[first.host].active_release == finished.previous_release_id
    assert (reported[first.host].health, reported[first.host].outcome) == ("healthy", "succeeded")


def test_hosts_report_ready_with_their_release_and_the_audit_log_records_the_deploys(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    hosts = lab.cli("hosts", "--json")
    assert hosts.returncode == 0, hosts.stderr
    listed = json.loads(hosts.stdout)
    assert {host["status"] for host in listed} == {"ready"}
    assert {host["apps"][0]["health"] for host in listed} == {"healthy"}
    # each agent measured the free disk of its own engine's data root
    assert all(isinstance(host["disk_free"], int) and host["disk_free"] > 0 for host in listed), listed
    audit = lab.cli("audit", "--json")
    actions = {entry["action"] for entry in json.loads(audit.stdout)}
    assert {"host.register", "release.create", "deployment.create"} <= actions
    status = json.loads(lab.cli("lab", "status", "--dir", str(lab.root), "--json").stdout)
    assert [(h["name"], h["agent"], h["engine"], h["edge"]) for h in status["hosts"]] == [
        (name, True, True, "up") for name in ("h1", "h2", "h3")
    ]


def test_a_lock_refuses_deploys_a_queued_one_starts_at_unlock_and_deployments_are_listed(
    serving_lab: Lab,
) -> None:
    lab = serving_lab
    version = current_version(lab)
    config = str(lab.write_config("quick", max_parallel="100%", monitor=0.5))
    image = f"{lab.state.image}:{version}"
    assert lab.cli("lock", "--env", "production", "--reason", "release freeze", "-c", config).returncode == 0
    refused = lab.cli("deploy", image, "--env", "production", "-c", config)
    assert refused.returncode == 4 and "release freeze" in refused.stderr
    queued = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "deploy",
            image,
            "--env",
            "production",
            "-c",
            config,
            "--queue",
        ],
        env=lab.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with lab.client() as client:
            wait_for(lambda: client.list_deployments(status="queued"), 60, "the deployment to be queued")
        assert lab.cli("unlock", "--env", "production", "-c", config).returncode == 0
        assert queued.wait(120) == 0, queued.communicate()
    finally:
        # Left unlocked whatever happened above: the later tests share this lab.
        if queued.poll() is None:
            queued.kill()
            queued.communicate()
        lab.cli("unlock", "--env", "production", "-c", config)
    listed = json.loads(lab.cli("deployments", "--json").stdout)
    newest = json.loads(lab.cli("deployment", str(listed[0]["id"]), "--json").stdout)
    assert (newest["status"], len(newest["hosts"])) == ("succeeded", 3)
    assert current_version(lab) == version
