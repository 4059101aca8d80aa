"""`shipyard lab`: a local fleet on this machine for trying shipyard, the e2e tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import JsonOption, handle_errors
from shipyard.cli.render import print_json, say, table

lab_app = typer.Typer(
    help="A local fleet: registry, controller, hosts with their own engines, an edge proxy."
)
DirOption = Annotated[Path, typer.Option("--dir", "-d", help="the lab's directory (state in lab.json)")]
DEFAULT_DIR = Path(".shipyard-lab")


@lab_app.command("up")
@handle_errors
def up(
    hosts: Annotated[int, typer.Option("--hosts", min=0, max=200, help="number of hosts")] = 3,
    directory: DirOption = DEFAULT_DIR,
    subnet: Annotated[str, typer.Option("--subnet", help="hosts get SUBNET.1, SUBNET.2, ...")] = "127.0.1",
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="build and push the demo images")
    ] = True,
    controllers: Annotated[
        int,
        typer.Option("--controllers", min=1, max=5, help="controller replicas (more than 1: --db postgres)"),
    ] = 1,
    db: Annotated[
        str,
        typer.Option("--db", help="sqlite, postgres (a server the lab starts) or a postgresql:// URL"),
    ] = "sqlite",
    preview_hosts: Annotated[
        int,
        typer.Option("--preview-hosts", min=0, max=50, help="hosts in the group 'preview' (apps' previews)"),
    ] = 0,
    previews_domain: Annotated[
        str, typer.Option("--previews-domain", help="the edge sends Host *.DOMAIN to the preview hosts")
    ] = "preview.lab.test",
    preview_reconcile_interval: Annotated[
        float,
        typer.Option(
            "--preview-reconcile-interval",
            help="seconds between passes of the controller's preview reconciler (closed PRs, TTLs)",
        ),
    ] = 3.0,
    as_json: JsonOption = False,
) -> None:
    """Start the lab; hosts start empty and pull the current release themselves."""
    from shipyard.lab.fleet import lab_up

    state = lab_up(
        directory,
        hosts,
        subnet=subnet,
        images=images,
        controllers=controllers,
        database=db,
        preview_hosts=preview_hosts,
        previews_domain=previews_domain,
        preview_reconcile_interval=preview_reconcile_interval,
    )
    if as_json:
        print_json(
            {
                "root": str(state.root),
                "hosts": [h.name for h in state.hosts],
                "edge": state.edge_url,
                "controllers": list(state.controller_urls),
                "registry": state.registry_address,
                "ca_file": str(state.ca_file),
            }
        )
        return
    say(f"lab up in {state.root}: {len(state.hosts)} hosts")
    urls = ", ".join(state.controller_urls)
    say(f"edge {state.edge_url}, controller {urls}, registry {state.registry_address}")
    say(f"the controller's certificate is signed by the lab's own CA: {state.ca_file}")
    say(f"next: source {state.root}/lab.env")
    say(f"      shipyard deploy {state.image}:v1 --env production -c {state.root}/shipyard.yml")


@lab_app.command("scale")
@handle_errors
def scale(
    hosts: Annotated[int, typer.Argument(min=0, max=200, help="the number of hosts wanted")],
    directory: DirOption = DEFAULT_DIR,
    as_json: JsonOption = False,
) -> None:
    """Add hosts (each converges to the current release before the edge sends it traffic) or remove some."""
    from shipyard.lab.fleet import lab_scale

    state = lab_scale(directory, hosts)
    if as_json:
        print_json({"hosts": [h.name for h in state.hosts]})
        return
    say(f"the lab has {len(state.hosts)} hosts: " + ", ".join(h.name for h in state.hosts))


@lab_app.command("status")
@handle_errors
def status(directory: DirOption = DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Processes, edge membership and what the controller knows of each host."""
    from shipyard.lab.fleet import lab_status

    document = lab_status(directory)
    if as_json:
        print_json(document)
        return
    for replica in document["controllers"]:  # type: ignore[attr-defined]
        running = "running" if replica["running"] else "stopped"
        role = ", leader" if replica["leader"] else ""
        say(f"controller {replica['url']} (pid {replica['pid']}, {running}{role})")
    say(f"edge {document['edge']}")
    rows = [
        [
            h["name"],
            h["group"],
            h["address"],
            h["agent"],
            h["engine"],
            h["edge"],
            h["controller_status"],
            h["active_release"],
        ]
        for h in document["hosts"]  # type: ignore[attr-defined]
    ]
    table("lab hosts", ["host", "group", "address", "agent", "engine", "edge", "controller", "release"], rows)


@lab_app.command("down")
@handle_errors
def down(directory: DirOption = DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Stop everything the lab started (engines, containers, processes) and remove its directory."""
    from shipyard.lab.fleet import lab_down

    lab_down(directory)
    if as_json:
        print_json({"removed": str(directory)})
        return
    say(f"lab in {directory} removed")
