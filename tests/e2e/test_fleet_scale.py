"""Autoscaling: a new host pulls the current release and joins the edge only once it serves it."""

from __future__ import annotations

import threading
import time

import pytest

from shipyard.lab.fleet import lab_scale
from shipyard.lab.load import LoadGenerator

from .lab_harness import Lab, current_version, wait_for

pytestmark = pytest.mark.e2e


def _watch_new_host(
    lab: Lab, name: str, stop: threading.Event, samples: list[tuple[str, str | None]]
) -> None:
    """Pairs of (the edge's view of the host, what the host itself serves), sampled together."""
    while not stop.is_set():
        edge_state = lab.edge_servers().get(name, "absent")
        samples.append((edge_state, lab.host_version(name)))
        time.sleep(0.05)


def test_a_new_host_converges_before_the_edge_sends_it_traffic(serving_lab: Lab) -> None:
    lab = serving_lab
    version = current_version(lab)
    samples: list[tuple[str, str | None]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_new_host, args=(lab, "h4", stop, samples))
    with LoadGenerator(lab.edge_version_url, clients=4) as load:
        watcher.start()
        try:
            lab_scale(lab.root, 4)
            wait_for(lambda: lab.edge_servers().get("h4") == "up", 180, "h4 to join the edge")
            time.sleep(1.0)
        finally:
            # Back to 3 hosts whatever happened above: the later tests share this lab.
            stop.set()
            watcher.join()
            lab_scale(lab.root, 3)
        time.sleep(0.5)
    assert ("down", None) in samples  # it was at the edge, held down, before it served anything
    served = [host_version for edge_state, host_version in samples if edge_state == "up"]
    assert served and set(served) == {version}
    assert load.stats.failed == 0, load.stats.failures
    assert set(load.stats.bodies) == {version}
    assert [host.name for host in lab.state.hosts] == ["h1", "h2", "h3"]
    assert "h4" not in lab.edge_servers()
    with lab.client() as client:
        assert "h4" not in {host.name for host in client.hosts()}
