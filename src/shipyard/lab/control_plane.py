"""The lab's shared services: its registry, its controller (SQLite, https) and the files a user deploys with.

The controller serves https with a certificate from a throwaway CA made when the lab starts
(shipyard.lab.tls); the agents, the CLI (lab.env) and the lab's own clients trust that CA only.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from shipyard.controller.client import ControllerClient
from shipyard.controller.tls import client_ssl_context
from shipyard.files import write_private
from shipyard.lab.engine import ensure_default_engine
from shipyard.lab.images import push_lab_images
from shipyard.lab.ports import free_port
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.registry_server import RegistryServer
from shipyard.lab.state import LabState
from shipyard.lab.tls import TlsFiles, make_throwaway_ca
from shipyard.signing import generate_private_key, public_key_pem, write_private_key


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


def controller_tls(state: LabState) -> TlsFiles:
    """The lab's CA and the controller's certificate, made on first use and kept for restarts."""
    tls_dir = state.tls_dir
    files = TlsFiles(state.ca_file, tls_dir / "server.pem", tls_dir / "server-key.pem")
    if all(path.is_file() for path in (files.ca_cert, files.server_cert, files.server_key)):
        return files
    return make_throwaway_ca(tls_dir)


def release_signing_key(state: LabState) -> Path:
    """The controller's release signing key, made on first use; the agents trust its .pub."""
    key = state.release_key_file
    if not (key.is_file() and key.with_name(key.name + ".pub").is_file()):
        key.parent.mkdir(parents=True, exist_ok=True)
        private = generate_private_key()
        write_private_key(key, private)
        key.with_name(key.name + ".pub").write_bytes(public_key_pem(private.public_key()))
    return key


def builder_environment(state: LabState) -> dict[str, str]:
    """What the controller's job worker needs to build pushed commits: the Docker Engine that built
    the lab images (BuildKit through the docker CLI), and a home for its secret store (deploy keys).
    The lab registry takes pushes without a login, so no registry credentials are needed."""
    home = state.path / "controller"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "DOCKER_HOST": ensure_default_engine(state.path / "build" / "engine"),
        "DOCKER_BUILDKIT": "1",
        "SHIPYARD_HOME": str(home),
    }


# A job whose controller died is retried this long after its last lease renewal: shorter than the
# controller's default (30 s), so the lab shows (and its tests wait for) a recovery quickly.
LAB_JOB_LEASE = 10.0


def start_controller(state: LabState, lost_after: float = 30.0, job_lease: float = LAB_JOB_LEASE) -> None:
    """Start (or restart, on the same port and database) the controller, serving https."""
    state.controller_port = state.controller_port or free_port()
    database = state.path / "controller" / "controller.db"
    tls = controller_tls(state)
    args = [
        "controller",
        *("--db", f"sqlite:///{database}", "--host", "127.0.0.1", "--port", str(state.controller_port)),
        *("--bootstrap-token-file", str(state.admin_token_file), "--lost-after", str(lost_after)),
        *("--job-lease", str(job_lease)),
        *("--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)),
        *("--signing-key", str(release_signing_key(state))),
    ]
    state.controller_pid = shipyard_process(args, controller_log(state), builder_environment(state))
    state.save()
    wait_http(
        f"{state.controller_url}/healthz",
        60,
        "the lab controller",
        controller_log(state),
        verify=client_ssl_context(state.ca_file),
    )


def controller_client(
    state: LabState, token: str | None = None, *, timeout: float = 10.0
) -> ControllerClient:
    """A client of the lab's controller trusting the lab's CA."""
    return ControllerClient(state.controller_url, token, timeout=timeout, ca_file=state.ca_file)


def admin_client(state: LabState, *, timeout: float = 10.0) -> ControllerClient:
    return controller_client(state, admin_token(state), timeout=timeout)


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
        f"export SHIPYARD_CA_FILE={state.ca_file}\n"
        f"export SHIPYARD_TOKEN={admin_token(state) or ''}\n",
    )
