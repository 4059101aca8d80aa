"""Run Debian's docker-registry on 127.0.0.1 with our own config and htpasswd auth."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shipyard.errors import RegistryError
from shipyard.files import write_private
from shipyard.lab.ports import free_port

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {address}
  headers:
    X-Content-Type-Options: [nosniff]
{auth}"""

AUTH_TEMPLATE = """\
auth:
  htpasswd:
    realm: shipyard-registry
    path: {htpasswd}
"""


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry (the registry accepts bcrypt only), made by apache2-utils."""
    tool = shutil.which("htpasswd")
    if tool is None:
        raise RegistryError("htpasswd is not installed; install apache2-utils (make deps).")
    done = subprocess.run(
        [tool, "-niB", username], input=password, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class RegistryServer:
    root: Path
    address: str
    username: str | None
    password: str | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 20.0) -> RegistryServer:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RegistryError("docker-registry is not installed; run 'make deps' first.")
        self.root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.username and self.password:
            htpasswd = self.root / "htpasswd"
            write_private(htpasswd, htpasswd_line(self.username, self.password) + "\n")
            auth = AUTH_TEMPLATE.format(htpasswd=htpasswd)
        config = self.root / "config.yml"
        config.write_text(CONFIG_TEMPLATE.format(data=self.root / "data", address=self.address, auth=auth))
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v2/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RegistryError(f"the registry at {self.address} did not start; see {self.root}/registry.log.")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def start_registry(
    root: Path, *, port: int | None = None, username: str | None = None, password: str | None = None
) -> RegistryServer:
    address = f"127.0.0.1:{port or free_port()}"
    return RegistryServer(root=root, address=address, username=username, password=password).start()
