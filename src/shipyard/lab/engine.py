"""Start a Docker Engine when none answers: the default one, or an extra one per lab host."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from shipyard.errors import DockerError

DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_answers(base_url: str) -> bool:
    try:
        client = docker.DockerClient(base_url=base_url, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return False


def wait_for_engine(base_url: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_answers(base_url):
            return
        time.sleep(0.2)
    tail = log.read_text()[-800:] if log and log.exists() else ""
    raise DockerError(f"Docker Engine at {base_url} did not answer within {timeout:.0f} s. {tail}".strip())


def ensure_default_engine(log_dir: Path, timeout: float = 60.0) -> str:
    """Return the default engine's URL, starting dockerd in the background if none answers."""
    base_url = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if engine_answers(base_url):
        return base_url
    if os.environ.get("DOCKER_HOST"):
        raise DockerError(f"DOCKER_HOST={base_url} does not answer; start that engine or unset DOCKER_HOST.")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerError("No Docker Engine answers and dockerd is not installed; run 'make deps' first.")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "dockerd.log"
    with log.open("ab") as out:
        subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_engine(base_url, timeout, log)
    return base_url


@dataclass(frozen=True)
class ExtraEngine:
    """A second dockerd with its own data-root and socket: a lab host that pulls for itself."""

    root: Path
    pid: int

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def bridge(self) -> str:
        return bridge_name(self.root)


def bridge_name(root: Path) -> str:
    """An interface name of this engine's own (15 characters at most)."""
    return "sy" + hashlib.sha256(str(root).encode()).hexdigest()[:10]


def _create_bridge(name: str) -> None:
    # dockerd deletes the default docker0 when started with --bridge=none, which breaks the main
    # engine's bridge network; an empty bridge of its own keeps every engine to itself.
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    done = subprocess.run(["ip", "link", "add", name, "type", "bridge"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DockerError(f"creating the bridge {name} for an extra engine failed: {done.stderr.strip()}")


def start_extra_engine(root: Path, timeout: float = 60.0) -> ExtraEngine:
    """Start an isolated dockerd: host networking only (own empty bridge, no iptables), so engines
    never clash."""
    root.mkdir(parents=True, exist_ok=True)
    _create_bridge(bridge_name(root))
    for sub in ("data", "exec"):
        (root / sub).mkdir(exist_ok=True)
    argv = [
        shutil.which("dockerd") or "dockerd",
        f"--host=unix://{root / 'docker.sock'}",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--bridge={bridge_name(root)}",
        "--iptables=false",
        "--ip-masq=false",
        "--insecure-registry=127.0.0.0/8",
    ]
    log = root / "dockerd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    engine = ExtraEngine(root=root, pid=proc.pid)
    wait_for_engine(engine.base_url, timeout, log)
    return engine


def stop_extra_engine(engine: ExtraEngine, timeout: float = 30.0) -> None:
    try:
        client = docker.DockerClient(base_url=engine.base_url, timeout=10)
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
    except (docker.errors.DockerException, OSError):
        pass
    try:
        os.kill(engine.pid, 15)
        _wait_gone(engine.pid, timeout)
    except ProcessLookupError:
        pass
    subprocess.run(["ip", "link", "del", engine.bridge], capture_output=True)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, 9)
