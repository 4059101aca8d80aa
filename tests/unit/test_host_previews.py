"""Previews on a host, with the fakes: pool backends, host ports, routing by the map, teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from host_fakes import DIGESTS, REPOSITORY, FakeHost, app_spec, fake_host

from shipyard.adapters.haproxy_config import PreviewPool, ProxiedApp, ProxyPaths, render_config, render_map
from shipyard.adapters.registry import parse_image
from shipyard.agent import sealed_store
from shipyard.agent.local_host import LocalHost
from shipyard.domain.commands import RoutePreview, UnregisterApp, UnroutePreview
from shipyard.domain.models import Release
from shipyard.domain.plan import start_container
from shipyard.domain.preview_host import (
    PreviewAllocation,
    PreviewPoolFull,
    PreviewSettings,
    choose_allocation,
    preview_settings,
)
from shipyard.domain.previews import PREVIEW_LABEL, preview_app_name, preview_host_name
from shipyard.domain.spec import AppSpec, parse_spec, spec_snapshot
from shipyard.errors import ConfigError
from shipyard.host import maintenance, service
from shipyard.host.previews import place_preview, removal_plan, remove_preview, serve_previews, stale_previews
from shipyard.lab.edge import render_edge_config
from shipyard.lab.state import HostRecord, LabState, load_state

SETTINGS = PreviewSettings(listen="127.0.0.1:1", slots=4, first_port=21000, last_port=21009)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[FakeHost]:
    fake = fake_host(tmp_path / "home")
    yield fake
    fake.close()


def preview_spec(production: AppSpec, pr: int) -> AppSpec:
    """A preview's release spec as the controller sends it (production's, renamed and placed)."""
    snapshot = spec_snapshot(production)
    snapshot.update(
        app=preview_app_name(production.app, pr),
        preview={
            "repository": "acme/web",
            "pr": pr,
            "host_name": preview_host_name(production.app, pr, "preview.test"),
        },
        resources={"memory": "64m", "cpus": 0.25},
    )
    return parse_spec(snapshot)


def deploy_preview(host: FakeHost, spec: AppSpec, version: str) -> service.Outcome:
    release = Release(
        f"r{len(host.store.releases(spec.app)) + 1}",
        spec.app,
        REPOSITORY,
        DIGESTS[version],
        spec,
        service.utcnow(),
        "controller",
    )
    placed = place_preview(host.context, release, SETTINGS)
    host.store.save_release(placed)
    return service.deploy(host.context, placed.app_spec, placed.pinned_image, release=placed)


def production(host: FakeHost) -> AppSpec:
    spec = app_spec("web")
    release = service.make_release(
        host.context, spec, parse_image(f"{REPOSITORY}@{DIGESTS['v1']}"), DIGESTS["v1"]
    )
    service.deploy(host.context, spec, release.pinned_image, release=release)
    return spec


def test_a_preview_gets_host_ports_a_pool_backend_its_label_and_a_route_after_its_switch(
    host: FakeHost,
) -> None:
    prod = production(host)
    spec = preview_spec(prod, 7)
    outcome = deploy_preview(host, spec, "v2")
    allocation = host.store.preview_allocation("web-pr-7")
    assert allocation == PreviewAllocation("web-pr-7", "pr-7.web.preview.test", 0, 21000, routed=True)
    container = next(
        c for c in host.engine.by_name.values() if c.spec.labels.get("shipyard.app") == "web-pr-7"
    )
    assert container.spec.labels[PREVIEW_LABEL] == "acme/web#7"
    assert container.spec.env["PORT"] == "21000"  # host network: the app listens on the host's port
    assert (container.spec.memory, container.spec.cpus) == ("64m", 0.25)
    kinds = [type(step) for step in outcome.plan.steps]
    assert (
        kinds.index(RoutePreview) == kinds.index(next(k for k in kinds if k.__name__ == "SwitchBackend")) + 1
    )
    assert host.proxy.serving("preview_0") == ["blue"]
    assert host.proxy.routes() == {"pr-7.web.preview.test": "preview_0"}
    # Production keeps its own frontend; the preview is in the pool only.
    assert {app.name: app.pool_backend for app in host.proxy.config} == {"web": None, "web-pr-7": "preview_0"}
    assert host.proxy.pool == PreviewPool("127.0.0.1:1", 4, {"pr-7.web.preview.test": "preview_0"})


def test_adding_swapping_and_removing_previews_never_reloads_once_the_pool_is_there(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 1), "v1")  # the first preview brings the pool: one reload
    before = list(host.proxy.events)
    deploy_preview(host, preview_spec(prod, 2), "v1")
    deploy_preview(host, preview_spec(prod, 2), "v2")  # a push: the same blue/green switch
    remove_preview(host.context, "web-pr-1")
    new = host.proxy.events[len(before) :]
    assert "reload" not in new and "start" not in new
    assert "add map pr-2.web.preview.test" in new and "del map pr-1.web.preview.test" in new
    assert host.proxy.serving("preview_1") == ["green"]
    assert host.proxy.routes() == {"pr-2.web.preview.test": "preview_1"}


def test_a_redeploy_keeps_the_ports_and_backend_and_routes_once(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 3), "v1")
    outcome = deploy_preview(host, preview_spec(prod, 3), "v2")
    assert not any(isinstance(step, RoutePreview) for step in outcome.plan.steps)
    assert [a.port for a in host.store.preview_allocations()] == [21000]
    assert sorted(host.engine.running("web-pr-3")) == ["shipyard-web-pr-3-r2-green"]


def test_teardown_removes_everything_of_the_preview_and_frees_its_ports(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 4), "v2")
    host.engine.images.add(f"{REPOSITORY}@{DIGESTS['v2']}")
    plan = removal_plan(host.context, "web-pr-4")
    assert isinstance(plan.steps[0], UnroutePreview)
    assert not any(isinstance(step, UnregisterApp) for step in plan.steps)
    remove_preview(host.context, "web-pr-4")
    assert host.engine.containers("web-pr-4") == []
    assert host.proxy.routes() == {}
    assert host.store.preview_allocations() == [] and host.store.releases("web-pr-4") == []
    assert host.store.app("web-pr-4") is None
    assert host.proxy.servers["preview_0"]["blue"].admin == "maint"
    assert f"{REPOSITORY}@{DIGESTS['v2']}" in host.engine.removed_images
    # Production serves on, untouched, and the next preview takes the freed backend and ports.
    assert host.proxy.serving("app_web") == ["blue"]
    deploy_preview(host, preview_spec(prod, 5), "v2")
    assert host.store.preview_allocation("web-pr-5") == PreviewAllocation(
        "web-pr-5", "pr-5.web.preview.test", 0, 21000, routed=True
    )
    # Idempotent: a second teardown of a gone preview does nothing harmful.
    remove_preview(host.context, "web-pr-4")


def test_an_image_production_also_runs_is_kept_at_teardown(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 6), "v1")  # the same commit as production
    host.engine.images.add(f"{REPOSITORY}@{DIGESTS['v1']}")
    remove_preview(host.context, "web-pr-6")
    assert host.engine.removed_images == []


def test_stale_previews_are_those_not_desired_and_never_a_plain_app(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 1), "v1")
    deploy_preview(host, preview_spec(prod, 2), "v1")
    assert stale_previews(host.context, ["web", "web-pr-2"]) == ["web-pr-1"]
    assert stale_previews(host.context, []) == ["web-pr-1", "web-pr-2"]  # production is never stale


def test_a_labelled_container_no_record_knows_is_removed(host: FakeHost) -> None:
    prod = production(host)
    spec = preview_spec(prod, 9)
    release = place_preview(
        host.context,
        Release("r1", spec.app, REPOSITORY, DIGESTS["v1"], spec, service.utcnow(), "controller"),
        SETTINGS,
    )
    # A crash right after the container started: no record of the app, one labelled container.
    host.engine.run(start_container(spec.app, release, "blue", {}).container)
    host.store.forget_app(spec.app)
    assert host.store.app(spec.app) is None and host.engine.containers(spec.app)
    assert stale_previews(host.context, ["web"]) == ["web-pr-9"]
    remove_preview(host.context, "web-pr-9")
    assert host.engine.containers("web-pr-9") == [] and host.engine.running("web") != []


def test_maintenance_remove_of_a_plain_app_is_unchanged_by_previews(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 1), "v1")
    plan = maintenance._remove_plan(host.context, "web")
    assert isinstance(plan.steps[0], UnregisterApp) and not plan.steps[0].last


# pure -----------------------------------------------------------------------------------------------


def test_allocation_takes_the_lowest_free_backend_and_port_pair() -> None:
    taken = [PreviewAllocation("a", "h1", 0, 21000), PreviewAllocation("b", "h2", 2, 21004)]
    assert choose_allocation("c", "Pr-1.Web.Test", SETTINGS, taken) == PreviewAllocation(
        "c", "pr-1.web.test", 1, 21002
    )


def test_a_full_pool_or_port_range_is_refused_with_what_to_do() -> None:
    full = [PreviewAllocation(str(i), str(i), i, 21000 + 2 * i) for i in range(4)]
    with pytest.raises(PreviewPoolFull, match="--preview-slots"):
        choose_allocation("x", "h", SETTINGS, full)
    narrow = PreviewSettings(slots=8, first_port=21000, last_port=21003)
    with pytest.raises(PreviewPoolFull, match="--preview-ports"):
        choose_allocation("x", "h", narrow, full[:2])


@pytest.mark.parametrize(
    ("listen", "slots", "ports", "flag"),
    [
        ("8800", 32, "20000-20999", "--previews-listen"),
        ("127.0.0.1:8800", 0, "20000-20999", "--preview-slots"),
        ("127.0.0.1:8800", 32, "20000", "--preview-ports"),
        ("127.0.0.1:8800", 32, "30000-20000", "--preview-ports"),
    ],
)
def test_bad_preview_flags_name_the_flag(listen: str, slots: int, ports: str, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        preview_settings(listen, slots, ports)


def test_the_config_routes_by_host_through_the_map_and_answers_404_otherwise(tmp_path: Path) -> None:
    paths = ProxyPaths(tmp_path)
    preview = ProxiedApp(
        "web-pr-1",
        "127.0.0.1:8080",
        "127.0.0.1",
        {"blue": 20000, "green": 20001},
        "/up",
        "green",
        pool_backend="preview_1",
    )
    config = render_config([preview], paths, PreviewPool("127.0.0.1:8800", 3, {}))
    assert "frontend front_web-pr-1" not in config  # no frontend of its own
    assert f"use_backend %[req.hdr(host),field(1,:),lower,map({paths.previews_map})]" in config
    assert "default_backend preview_missing" in config and "http-request return status 404" in config
    assert [f"backend preview_{i}" in config for i in range(4)] == [True, True, True, False]
    assert "server blue 127.0.0.1:20000 check inter 1000 fall 3 rise 2 disabled" in config
    assert "server green 127.0.0.1:20001 check inter 1000 fall 3 rise 2\n" in config
    assert "server blue 127.0.0.1:1 check inter 1000 fall 3 rise 2 disabled" in config  # unclaimed


def test_the_map_file_refuses_a_host_name_that_would_add_a_line() -> None:
    assert (
        render_map({"b.test": "preview_1", "a.test": "preview_0"}) == "a.test preview_0\nb.test preview_1\n"
    )
    with pytest.raises(ConfigError):
        render_map({"a.test\nevil.test": "preview_0"})


def test_status_shows_the_previews_of_the_app_with_their_host_names(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 12), "v2")
    document = service.status(host.context, "web")
    assert document["preview"] is None
    assert document["previews"] == [
        {
            "app": "web-pr-12",
            "pr": 12,
            "host_name": "pr-12.web.preview.test",
            "active_release": "r1",
            "active_slot": "blue",
            "active_port": 21000,
            "backend": "preview_0",
            "routed": True,
        }
    ]
    own = service.status(host.context, "web-pr-12")
    assert own["preview"] == {"host_name": "pr-12.web.preview.test", "backend": "preview_0", "routed": True}


def test_an_agent_given_previews_listen_serves_previews_before_any_comes(host: FakeHost) -> None:
    assert serve_previews(host.context, SETTINGS) == "haproxy serves previews on 127.0.0.1:1 (started)"
    assert host.proxy.pool == PreviewPool("127.0.0.1:1", 4, {}) and host.proxy.running()
    assert "preview_3" in host.proxy.servers
    assert serve_previews(host.context, SETTINGS) is None  # as it is: nothing to do
    wider = PreviewSettings(listen="127.0.0.1:1", slots=6, first_port=21000, last_port=21009)
    assert serve_previews(host.context, wider) == "haproxy serves previews on 127.0.0.1:1 (reloaded)"
    assert "preview_5" in host.proxy.servers


def test_the_lab_edge_sends_the_previews_domain_to_the_preview_hosts(tmp_path: Path) -> None:
    config = render_edge_config(8000, tmp_path, previews_domain="Preview.Lab.Test")
    assert "acl preview_host req.hdr(host),field(1,:),lower -m end .preview.lab.test" in config
    assert config.index("use_backend previews if preview_host") < config.index("use_backend hosts")
    assert "backend previews" in config
    with pytest.raises(ConfigError):
        render_edge_config(8000, tmp_path, previews_domain="lab.test\nfrontend evil")


def test_lab_hosts_keep_their_group(tmp_path: Path) -> None:
    state = LabState(root=str(tmp_path), previews_domain="pv.test")
    state.hosts = [
        HostRecord("h1", 1, "127.0.1.1", "r1"),
        HostRecord("h2", 2, "127.0.1.2", "r2", group="preview"),
    ]
    state.save()
    loaded = load_state(tmp_path)
    assert [h.name for h in loaded.hosts_of("production")] == ["h1"]
    assert [h.name for h in loaded.hosts_of("preview")] == ["h2"]
    assert loaded.hosts[1].previews_listen == "127.0.1.2:8800" and loaded.previews_domain == "pv.test"


def test_a_preview_whose_first_deploy_failed_before_haproxy_had_the_pool_is_removed(host: FakeHost) -> None:
    prod = production(host)
    spec = preview_spec(prod, 8)
    release = Release("r1", spec.app, REPOSITORY, DIGESTS["v1"], spec, service.utcnow(), "controller")
    place_preview(host.context, release, SETTINGS)  # ports taken; haproxy never loaded the pool
    assert "preview_0" not in host.proxy.servers
    remove_preview(host.context, "web-pr-8")
    assert host.store.preview_allocations() == [] and host.proxy.serving("app_web") == ["blue"]


def test_the_agent_reports_a_previews_counters_from_its_pool_backend(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 2), "v1")
    local = LocalHost(host.context, previews=SETTINGS)
    observed = local.observe("web-pr-2")
    assert observed.active_release == "r1" and observed.healthy
    assert observed.counters is not None


def test_a_restarted_haproxy_routes_and_serves_the_previews_from_its_files(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 1), "v1")
    deploy_preview(host, preview_spec(prod, 2), "v2")
    host.proxy.kill()
    _, done = service.recover(host.context, "web-pr-2")
    assert done and host.proxy.running()
    assert host.proxy.routes() == {"pr-1.web.preview.test": "preview_0", "pr-2.web.preview.test": "preview_1"}
    assert host.proxy.serving("preview_0") == ["blue"] and host.proxy.serving("preview_1") == ["blue"]
    assert host.proxy.serving("app_web") == ["blue"]


def test_the_agent_forgets_the_sealed_secrets_it_kept_for_a_torn_down_preview(host: FakeHost) -> None:
    prod = production(host)
    deploy_preview(host, preview_spec(prod, 3), "v1")
    sealed_store.keep(host.context.home, "web-pr-3", "r1", '{"sealed": "ciphertext"}')
    local = LocalHost(host.context, previews=SETTINGS)
    done = local.teardown_previews([])
    assert [line.split(":")[0] for line in done] == ["web-pr-3"]
    assert sealed_store.kept(host.context.home, "web-pr-3", "r1") is None
    assert host.engine.running("web") != []  # production is not a preview: never torn down this way
    assert local.teardown_previews([]) == []
