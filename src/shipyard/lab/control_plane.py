"""The lab's shared services: its registry, its controllers (https) and the files a user deploys with.

The controller serves https with a certificate from a throwaway CA made when the lab starts
(shipyard.lab.tls); the agents, the CLI (lab.env) and the lab's own clients trust that CA only.
One controller keeps its data in SQLite; several replicas share a PostgreSQL database, which the lab
starts itself (`--db postgres`) or is given, and the agents and lab.env get every replica's URL.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from shipyard.errors import ConfigError
from shipyard.files import write_private
from shipyard.fleet_api.client import ControllerClient
from shipyard.fleet_api.tls import client_ssl_context
from shipyard.lab.engine import ensure_default_engine
from shipyard.lab.images import push_lab_images
from shipyard.lab.ports import free_port
from shipyard.lab.postgres import PostgresServer, start_postgres
from shipyard.lab.processes import shipyard_process, stop_process, wait_http
from shipyard.lab.registry_server import RegistryServer
from shipyard.lab.state import ControllerRecord, LabState
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


def controller_log(state: LabState, replica: int = 0) -> Path:
    name = "controller.log" if replica == 0 else f"controller-{replica + 1}.log"
    return state.path / "controller" / name


def database_url(state: LabState) -> str:
    return state.database_url or f"sqlite:///{state.path / 'controller' / 'controller.db'}"


def check_database(database: str) -> None:
    """`sqlite`, `postgres` (a server of the lab's own, stopped by lab down) or a PostgreSQL URL."""
    if database not in ("sqlite", "postgres") and not database.startswith("postgresql"):
        # Only the scheme is echoed: a mistyped URL may hold a password.
        raise ConfigError(
            f"--db {database.split(':', 1)[0]!r} is not sqlite, postgres or a postgresql:// URL; "
            "give one of those."
        )


def start_database(state: LabState, database: str) -> None:
    check_database(database)
    if database == "sqlite":
        state.database_url = ""
    elif database == "postgres":
        server = start_postgres()
        state.postgres_root, state.postgres_port = str(server.root), server.port
        state.save()
        state.database_url = server.create_database("shipyard_lab")
    else:
        state.database_url = database
    state.save()


def stop_database(state: LabState) -> None:
    if state.postgres_root:
        PostgresServer(Path(state.postgres_root), state.postgres_port).stop()


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


def start_controller(
    state: LabState, lost_after: float = 30.0, replica: int = 0, job_lease: float = LAB_JOB_LEASE
) -> None:
    """Start (or restart, on the same port and database) a controller replica, serving https.

    Replica 0 is the lab's first controller; replica N (1, 2, ...) is state.extra_controllers[N - 1],
    added when it is started the first time."""
    if replica == 0:
        state.controller_port = state.controller_port or free_port()
        port = state.controller_port
    else:
        while len(state.extra_controllers) < replica:
            state.extra_controllers.append(ControllerRecord(port=free_port()))
        port = state.extra_controllers[replica - 1].port
    tls = controller_tls(state)
    args = [
        "controller",
        *("--db", database_url(state), "--host", "127.0.0.1", "--port", str(port)),
        *("--bootstrap-token-file", str(state.admin_token_file), "--lost-after", str(lost_after)),
        *("--job-lease", str(job_lease)),
        *("--preview-reconcile-interval", str(state.preview_reconcile_interval)),
        *("--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)),
        *("--signing-key", str(release_signing_key(state))),
    ]
    pid = shipyard_process(args, controller_log(state, replica), builder_environment(state))
    if replica == 0:
        state.controller_pid = pid
    else:
        state.extra_controllers[replica - 1].pid = pid
    state.save()
    wait_http(
        f"{state.controller_urls[replica]}/healthz",
        60,
        "the lab controller",
        controller_log(state, replica),
        verify=client_ssl_context(state.ca_file),
    )


def controller_role(state: LabState, url: str) -> dict[str, object] | None:
    """What the replica at `url` says of itself (GET /controller); None when it does not answer."""
    try:
        answer = httpx.get(f"{url}/controller", timeout=3.0, verify=client_ssl_context(state.ca_file))
        found: dict[str, object] = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    return found or None


def controller_client(
    state: LabState, token: str | None = None, *, timeout: float = 10.0
) -> ControllerClient:
    """A client of the lab's controllers (failing over between replicas) trusting the lab's CA."""
    return ControllerClient(state.controller_urls, token, timeout=timeout, ca_file=state.ca_file)


def admin_client(state: LabState, *, timeout: float = 10.0) -> ControllerClient:
    return controller_client(state, admin_token(state), timeout=timeout)


def stop_controller(state: LabState) -> None:
    stop_process(state.controller_pid)
    state.controller_pid = None
    state.save()


def stop_controllers(state: LabState) -> None:
    """Every replica, the first one last."""
    for record in state.extra_controllers:
        stop_process(record.pid)
        record.pid = None
    stop_controller(state)


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
        "secrets": {"key_file": str(state.secrets_key_file)},
    }


def write_app_files(state: LabState) -> None:
    """DIR/shipyard.yml for deploys, DIR/lab.env (0600) with the controller URL and admin token."""
    (state.path / "shipyard.yml").write_text(yaml.safe_dump(app_document(state), sort_keys=False))
    env = state.path / "lab.env"
    write_private(
        env,
        f"export SHIPYARD_CONTROLLER={','.join(state.controller_urls)}\n"
        f"export SHIPYARD_CA_FILE={state.ca_file}\n"
        f"export SHIPYARD_TOKEN={admin_token(state) or ''}\n",
    )
