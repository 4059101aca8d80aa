"""The lab's shared services: its registry, its controller (SQLite) and the files a user deploys with."""

from __future__ import annotations

from pathlib import Path

import yaml

from shipyard.files import write_private
from shipyard.lab.images import push_lab_images
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.registry_server import RegistryServer
from shipyard.lab.state import LabState


def start_registry(state: LabState) -> None:
    state.registry_address = state.registry_address or f"127.0.0.1:{free_port()}"
    server = RegistryServer(state.path / "registry", state.registry_address, None, None).start()
    assert server.process is not None
    state.registry_pid = server.process.pid
    state.save()


def push_images(state: LabState) -> list[str]:
    return push_lab_images(state.image, state.path / "build")


def controller_log(state: LabState) -> Path:
    return state.path / "controller" / "controller.log"


def start_controller(state: LabState, lost_after: float = 30.0) -> None:
    """Start (or restart, on the same port and database) the controller."""
    state.controller_port = state.controller_port or free_port()
    database = state.path / "controller" / "controller.db"
    args = [
        "controller",
        *("--db", f"sqlite:///{database}", "--host", "127.0.0.1", "--port", str(state.controller_port)),
        *("--bootstrap-token-file", str(state.admin_token_file), "--lost-after", str(lost_after)),
    ]
    state.controller_pid = shipyard_process(args, controller_log(state))
    state.save()
    wait_http(f"{state.controller_url}/healthz", 60, "the lab controller", controller_log(state))


def stop_controller(state: LabState) -> None:
    stop_process(state.controller_pid)
    state.controller_pid = None
    state.save()


def admin_token(state: LabState) -> str | None:
    try:
        return state.admin_token_file.read_text().strip() or None
    except OSError:
        return None


def app_document(state: LabState) -> dict[str, object]:
    """shipyard.yml of the lab's demo app; each agent binds it to its host's address."""
    return {
        "app": state.app.name,
        "image": state.image,
        "registry": {"insecure": True},
        "port": state.app.port,
        "proxy": {"listen": state.app.listen("127.0.0.1")},
        "healthcheck": {"interval": 0.1, "deadline": 10},
        "deploy": {"drain_timeout": 2, "stop_timeout": 2},
        "rollout": {"max_parallel": "1", "monitor": 2},
        "controller": state.controller_url,
    }


def write_app_files(state: LabState) -> None:
    """DIR/shipyard.yml for deploys, DIR/lab.env (0600) with the controller URL and admin token."""
    (state.path / "shipyard.yml").write_text(yaml.safe_dump(app_document(state), sort_keys=False))
    env = state.path / "lab.env"
    write_private(
        env,
        f"export SHIPYARD_CONTROLLER={state.controller_url}\n"
        f"export SHIPYARD_TOKEN={admin_token(state) or ''}\n",
    )
