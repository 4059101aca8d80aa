"""The lab's preview hosts: in the group `preview`, listening for previews on their own address, and
the edge sending every Host of the previews domain to them (the app's hosts get the rest)."""

from __future__ import annotations

import httpx

from shipyard.lab.edge import PREVIEWS
from shipyard.lab.fleet import edge_of, lab_add_preview_hosts, lab_remove_preview_hosts
from shipyard.lab.state import PREVIEW_GROUP, load_state

from .lab_harness import Lab, wait_for


def test_a_preview_host_answers_the_previews_domain_at_the_edge(serving_lab: Lab) -> None:
    root = serving_lab.root
    serving = {host.name for host in serving_lab.state.hosts}
    try:
        state = lab_add_preview_hosts(root, 1)
        [host] = state.hosts_of(PREVIEW_GROUP)
        assert host.previews_listen == f"{host.address}:8800"
        edge = edge_of(state)
        wait_for(lambda: edge.servers(PREVIEWS).get(host.name) == "up", 30, "the preview host to be up")
        asked = f"pr-1.{state.app.name}.{state.previews_domain}"
        answer = httpx.get(state.edge_url + "/", headers={"Host": asked.upper() + ":80"}, timeout=5)
        # No preview is open: the preview host's own frontend says so, with the name asked for.
        assert answer.status_code == 404 and f"{asked} is not an open preview" in answer.text
        assert answer.headers["x-lab-host"] == host.name
        other = httpx.get(state.edge_url + "/version", timeout=5)
        assert other.status_code == 200 and other.headers["x-lab-host"] in serving
        assert set(edge.servers()) == serving  # not an app host at the edge
    finally:
        lab_remove_preview_hosts(root)
    assert load_state(root).hosts_of(PREVIEW_GROUP) == []
    assert {host.name for host in serving_lab.state.hosts} == serving
