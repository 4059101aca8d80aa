"""One lab for the e2e package (torn down when its last test ends): registry, controller, 3 hosts, edge."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.lab.fleet import lab_down, lab_up

from .lab_harness import Lab, wait_for


@pytest.fixture(scope="package")
def lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="shipyard-e2e-"))
    subnet = f"127.0.{random.randint(100, 250)}"
    try:
        lab_up(root / "lab", 3, subnet=subnet)
        the_lab = Lab(root / "lab")
        wait_for(lambda: len(the_lab.edge_servers()) == 3, 30, "the edge to know 3 hosts")
        yield the_lab
    finally:
        if (root / "lab" / "lab.json").exists():
            lab_down(root / "lab")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def serving_lab(lab: Lab) -> Lab:
    """The lab with a release serving on every host (deployed here when the suite runs out of order)."""
    if not all(lab.host_version(host.name) for host in lab.state.hosts):
        deployment = lab.start_deployment("v1", max_parallel="100%", monitor=0.5)
        assert lab.wait_deployment(deployment.id).status == "succeeded"
    wait_for(lambda: set(lab.edge_servers().values()) == {"up"}, 30, "every host to be up at the edge")
    return lab
