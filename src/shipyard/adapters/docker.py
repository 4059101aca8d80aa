"""Docker Engine access for deploys: the only module that calls the docker SDK for them.

Reading what is there (ping, the app's containers, a container's state, the digests of a repository)
goes straight to the Engine API over its socket with the standard library, so a rollback to a warm
standby never imports the SDK (requests, urllib3); everything else uses the SDK, loaded on its first
use. docker.errors.*, connection errors and the Engine API's error answers are translated into
DockerError / NotFoundError once, in `_translate`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from shipyard.domain.models import (
    LABEL_APP,
    LABEL_DIGEST,
    LABEL_PROCESS,
    LABEL_RELEASE,
    LABEL_SLOT,
    LABEL_STOP_SIGNAL,
    LABEL_STOP_TIMEOUT,
    WEB,
    ContainerInfo,
    ContainerSpec,
    Slot,
)
from shipyard.errors import DockerError, NotFoundError, ShipyardError

if TYPE_CHECKING:
    import docker

T = TypeVar("T")

__all__ = ["ContainerSpec", "DockerEngine"]


class EngineAnswer(Exception):
    """A non-2xx answer of the Engine API to a direct call; `_translate` turns it into a ShipyardError."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    except EngineAnswer as exc:
        error = NotFoundError if exc.status == 404 else DockerError
        raise error(f"{action} failed: {exc.message}") from exc
    except ShipyardError:
        raise
    except Exception as exc:
        translated = _translated_sdk_error(action, exc)
        if translated is None:
            raise
        raise translated from exc


def _translated_sdk_error(action: str, exc: Exception) -> ShipyardError | None:
    """The SDK's and its HTTP library's errors; their modules are looked up only when loaded, as an
    exception of a module not loaded yet cannot have been raised."""
    errors = sys.modules.get("docker.errors")
    if errors is not None:
        if isinstance(exc, errors.NotFound):
            return NotFoundError(f"{action} failed: {exc.explanation or exc}")
        if isinstance(exc, errors.APIError):
            return DockerError(f"{action} failed: {exc.explanation or exc}")
    requests_errors = sys.modules.get("requests.exceptions")
    unreachable = isinstance(exc, OSError)
    unreachable |= errors is not None and isinstance(exc, errors.DockerException)
    unreachable |= requests_errors is not None and isinstance(exc, requests_errors.RequestException)
    if not unreachable:
        return None
    return DockerError(
        f"{action} failed: the Docker Engine does not answer ({exc}); start dockerd or set DOCKER_HOST."
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            connection.connect(self.socket_path)
        except OSError:
            connection.close()
            raise
        self.sock = connection


class EngineApi:
    """Read-only Engine API calls over a unix socket or plain TCP, one connection per call."""

    def __init__(self, connect: Callable[[], http.client.HTTPConnection]) -> None:
        self._connect = connect

    @classmethod
    def for_url(cls, url: str, timeout: float) -> EngineApi | None:
        """For unix:// and tcp:// (or http://) engines; None for others (TLS, ssh), left to the SDK."""
        parts = urlsplit(url)
        if parts.scheme in ("unix", "http+unix"):
            # unix://var/run/docker.sock means /var/run/docker.sock, as the SDK reads it.
            path = f"/{parts.netloc}{parts.path}" if parts.netloc else parts.path
            return cls(lambda: _UnixConnection(path, timeout)) if path else None
        if parts.scheme in ("tcp", "http") and parts.hostname:
            host, port = parts.hostname, parts.port or 2375
            return cls(lambda: http.client.HTTPConnection(host, port, timeout=timeout))
        return None

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        """The JSON (or text) of GET `path`: EngineAnswer for an error, OSError for no answer."""
        target = f"{path}?{urlencode(query)}" if query else path
        connection = self._connect()
        try:
            connection.request("GET", target, headers={"Accept": "application/json"})
            answer = connection.getresponse()
            body = answer.read()
        except http.client.HTTPException as exc:
            raise ConnectionError(f"the Engine API answered with broken HTTP: {exc}") from exc
        finally:
            connection.close()
        content = body.decode(errors="replace")
        if not 200 <= answer.status < 300:
            raise EngineAnswer(answer.status, _error_message(content) or f"HTTP {answer.status}")
        if not answer.getheader("Content-Type", "").startswith("application/json"):
            return content
        try:
            return json.loads(content)
        except ValueError as exc:
            raise ConnectionError(f"the Engine API answered with broken JSON: {exc}") from exc


def _error_message(content: str) -> str:
    with contextlib.suppress(ValueError):
        document = json.loads(content)
        if isinstance(document, dict) and document.get("message"):
            return str(document["message"])
    return content.strip()


def _quietly(action: Callable[[], object]) -> None:
    """A cleanup whose failure (the container gone already, the engine away) changes nothing."""
    with contextlib.suppress(ShipyardError), _translate("cleaning up"):
        action()


def _docker_errors() -> Any:
    import docker.errors

    return docker.errors


class DockerEngine:
    def __init__(self, base_url: str | None = None, timeout: int = 60) -> None:
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.base_url = url
        self.timeout = timeout
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._api = EngineApi.for_url(url, timeout)
        with _translate("connecting to the Docker Engine"):
            if self._api is not None:
                self._api.get("/_ping")
            else:
                self.client.ping()

    @property
    def client(self) -> docker.DockerClient:
        """The SDK's client, made on first use (importing the SDK costs more than a rollback's steps)."""
        with self._client_lock, _translate("connecting to the Docker Engine"):
            if self._client is None:
                import docker

                self._client = docker.DockerClient(base_url=self.base_url, timeout=self.timeout)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # images -----------------------------------------------------------------------------------
    def image_present(self, reference: str) -> bool:
        client = self.client
        errors = _docker_errors()
        try:
            client.images.get(reference)
            return True
        except errors.ImageNotFound:
            return False
        except errors.APIError as exc:
            # The engine answers 400 "invalid reference" for malformed names: not present.
            if exc.status_code == 400:
                return False
            raise DockerError(f"inspecting image {reference} failed: {exc.explanation}") from exc

    def present_digests(self, repository: str) -> frozenset[str]:
        with _translate(f"listing images of {repository}"):
            digests = set()
            if self._api is not None:
                filters = json.dumps({"reference": [repository]})
                listed = [dict(image) for image in self._api.get("/images/json", {"filters": filters})]
            else:
                listed = [image.attrs for image in self.client.images.list(name=repository)]
            for attrs in listed:
                for repo_digest in attrs.get("RepoDigests") or []:
                    # The same content pushed elsewhere is listed too; only this repository counts.
                    name, _, digest = repo_digest.partition("@")
                    if name == repository:
                        digests.add(digest)
            return frozenset(digests)

    def pull(
        self,
        repository: str,
        digest: str,
        auth: dict[str, str] | None,
        progress: Callable[[dict[str, Any]], None],
    ) -> None:
        """Pull by digest, streaming the engine's progress events to `progress`."""
        with _translate(f"pulling {repository}@{digest}"):
            stream = self.client.api.pull(repository, tag=digest, stream=True, decode=True, auth_config=auth)
            for event in stream:
                if "error" in event:
                    raise DockerError(f"pulling {repository}@{digest} failed: {event['error']}")
                progress(event)
        if not self.image_present(f"{repository}@{digest}"):
            raise DockerError(
                f"the pulled image does not carry digest {digest}: the registry served other content."
            )

    def version(self) -> str:
        """The Engine's own version ("20.10.24+dfsg1")."""
        with _translate("reading the Docker Engine version"):
            return str(self.client.version().get("Version", ""))

    def data_root(self) -> str:
        """The engine's DockerRootDir, where its images and containers live."""
        with _translate("reading the engine's info"):
            return str(self.client.info().get("DockerRootDir") or "")

    def remove_image(self, reference: str) -> None:
        client = self.client
        errors = _docker_errors()
        with contextlib.suppress(errors.ImageNotFound, errors.APIError):
            client.images.remove(reference)

    # containers -------------------------------------------------------------------------------
    def run(self, spec: ContainerSpec) -> str:
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "environment": spec.env,
            "labels": spec.labels,
            "detach": True,
            "init": True,
            "restart_policy": {"Name": "unless-stopped"},
            "volumes": spec.volumes,
        }
        if spec.network == "host":
            kwargs["network_mode"] = "host"
        else:
            kwargs["ports"] = {f"{port}/tcp": binding for port, binding in spec.ports.items()}
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.command:
            kwargs["command"] = spec.command
        if spec.stop_signal:
            # Also what docker's kill compares with: killed with it, the container is not restarted.
            kwargs["stop_signal"] = f"SIG{spec.stop_signal}"
        with _translate(f"starting container {spec.name}"):
            container = self.client.containers.run(spec.image, **kwargs)
            return str(container.id)

    def run_once(self, spec: ContainerSpec, on_line: Callable[[str], None], timeout: float) -> int:
        import docker

        errors = _docker_errors()
        kwargs: dict[str, Any] = {
            "name": spec.name,
            "environment": spec.env,
            "labels": spec.labels,
            "detach": True,
            "init": True,
            "network_mode": "host",
            "volumes": spec.volumes,
            "command": spec.command,
        }
        if spec.entrypoint is not None:
            kwargs["entrypoint"] = spec.entrypoint
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        with _translate(f"running a container of {spec.image}"):
            # No read timeout: a command may print nothing for minutes (the timer below bounds it).
            patient = docker.DockerClient(base_url=self.base_url, timeout=None)
            with contextlib.suppress(errors.NotFound):  # one left by a run killed with its agent
                patient.containers.get(spec.name).remove(force=True)
            container = patient.containers.create(spec.image, **kwargs)
        killer = threading.Timer(timeout, lambda: _quietly(container.kill))
        try:
            with _translate(f"running container {spec.name}"):
                container.start()
                killer.start()
                partial = ""
                for chunk in container.logs(stream=True, follow=True):
                    partial += bytes(chunk).decode(errors="replace")
                    *complete, partial = partial.split("\n")
                    for line in complete:
                        on_line(line.rstrip("\r"))
                if partial:
                    on_line(partial.rstrip("\r"))
                return int(container.wait().get("StatusCode", -1))
        finally:
            killer.cancel()
            _quietly(lambda: container.remove(force=True))
            patient.close()

    def exec_in(self, name: str, argv: list[str], on_output: Callable[[str], None]) -> int:
        import docker

        with _translate(f"running a command in container {name}"):
            patient = docker.DockerClient(base_url=self.base_url, timeout=None)
            try:
                exec_id = patient.api.exec_create(name, argv)["Id"]
                for chunk in patient.api.exec_start(exec_id, stream=True):
                    on_output(bytes(chunk).decode(errors="replace"))
                code = patient.api.exec_inspect(exec_id).get("ExitCode")
            finally:
                patient.close()
        return int(code) if code is not None else -1

    def attach_exec(self, name: str, argv: list[str], *, tty: bool) -> DockerExec:
        """argv in the running container `name`, its stdin open, its output read as it comes (an exec
        session); with `tty`, under a terminal (output not split into stdout and stderr then)."""
        import docker

        with _translate(f"starting a command in container {name}"):
            patient = docker.DockerClient(base_url=self.base_url, timeout=None)
            try:
                exec_id = patient.api.exec_create(name, argv, stdin=True, tty=tty)["Id"]
                stream = patient.api.exec_start(exec_id, socket=True, tty=tty)
            except BaseException:
                patient.close()
                raise
        return DockerExec(patient, exec_id, stream, tty)

    def containers(self, app: str) -> list[ContainerInfo]:
        with _translate(f"listing containers of {app}"):
            if self._api is None:
                found = self.client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app}"})
                return [self._info(c.attrs) for c in found]
            filters = json.dumps({"label": [f"{LABEL_APP}={app}"]})
            listed = self._api.get("/containers/json", {"all": "1", "filters": filters})
            inspected = []
            for summary in listed:
                try:  # as the SDK's list does: each container inspected for its state
                    inspected.append(self._api.get(f"/containers/{quote(str(summary['Id']))}/json"))
                except EngineAnswer as exc:
                    if exc.status != 404:  # a container removed since the listing is not there
                        raise
        return [self._info(attrs) for attrs in inspected]

    def labelled(self, label: str) -> list[ContainerInfo]:
        with _translate(f"listing containers labelled {label}"):
            if self._api is None:
                found = self.client.containers.list(all=True, filters={"label": label})
                return [self._info(c.attrs) for c in found]
            filters = json.dumps({"label": [label]})
            listed = self._api.get("/containers/json", {"all": "1", "filters": filters})
        # The listing's own labels and names suffice here: nothing reads the state beyond its status.
        return [
            self._info(
                {
                    "Id": summary.get("Id", ""),
                    "Name": (summary.get("Names") or [""])[0],
                    "Config": {"Labels": summary.get("Labels") or {}},
                    "State": {"Status": summary.get("State", "")},
                    "Image": summary.get("ImageID", ""),
                }
            )
            for summary in listed
        ]

    @staticmethod
    def _info(attrs: dict[str, Any]) -> ContainerInfo:
        """From a container's inspect document (the SDK's Container.attrs)."""
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        state = attrs.get("State") or {}
        slot: Slot = "green" if labels.get(LABEL_SLOT) == "green" else "blue"
        timeout = labels.get(LABEL_STOP_TIMEOUT, "")
        return ContainerInfo(
            id=str(attrs.get("Id", "")),
            name=str(attrs.get("Name", "")).lstrip("/"),
            app=labels.get(LABEL_APP, ""),
            slot=slot,
            release_id=labels.get(LABEL_RELEASE, ""),
            digest=labels.get(LABEL_DIGEST, ""),
            status=str(state.get("Status", "")),
            started_at=state.get("StartedAt", ""),
            image_id=attrs.get("Image", ""),
            process=labels.get(LABEL_PROCESS) or WEB,
            stop_signal=labels.get(LABEL_STOP_SIGNAL) or "TERM",
            stop_timeout=int(timeout) if timeout.isdigit() else 10,
            restart_count=int(attrs.get("RestartCount") or 0),
        )

    def status(self, name: str) -> tuple[str, int | None]:
        """(status, exit code when exited) of a container."""
        with _translate(f"inspecting container {name}"):
            if self._api is not None:
                attrs = self._api.get(f"/containers/{quote(name)}/json")
            else:
                attrs = self.client.containers.get(name).attrs
            state = attrs.get("State") or {}
            status = str(state.get("Status", ""))
            return status, state.get("ExitCode") if status == "exited" else None

    def stop(self, name: str, timeout: int) -> None:
        with _translate(f"stopping container {name}"):
            client = self.client
            try:
                client.containers.get(name).stop(timeout=timeout)
            except _docker_errors().NotFound:
                return

    def kill(self, name: str, signal: str) -> None:
        """Send `signal` (TERM, TSTP, ...); a container that is gone or not running is left as it is."""
        with _translate(f"signalling container {name}"):
            try:
                self.client.containers.get(name).kill(signal=f"SIG{signal}")
            except _docker_errors().NotFound:
                return
            except _docker_errors().APIError as exc:
                if exc.status_code == 409:  # not running: nothing to ask
                    return
                raise

    def exec(self, name: str, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run argv inside the container: (exit code, output). The engine's exec has no timeout of its
        own: the health check's loop bounds how often it runs, and a worker's check should be quick."""
        with _translate(f"running a health command in {name}"):
            try:
                result = self.client.containers.get(name).exec_run(list(argv), demux=False)
            except _docker_errors().APIError as exc:
                if exc.status_code == 409:
                    return 126, "the container is not running"
                raise
        output = bytes(result.output or b"").decode(errors="replace")
        return int(result.exit_code if result.exit_code is not None else 1), output

    def restarts(self, name: str) -> int:
        with _translate(f"inspecting container {name}"):
            return int(self.client.containers.get(name).attrs.get("RestartCount", 0) or 0)

    def start(self, name: str) -> None:
        with _translate(f"starting container {name}"):
            self.client.containers.get(name).start()

    def remove(self, name: str) -> None:
        with _translate(f"removing container {name}"):
            client = self.client
            try:
                client.containers.get(name).remove(force=True)
            except _docker_errors().NotFound:
                return

    def logs(self, name: str, tail: int = 20) -> str:
        try:
            client = self.client
        except DockerError:
            return ""
        try:
            raw = client.containers.get(name).logs(tail=tail)
        except _docker_errors().DockerException:
            return ""
        return bytes(raw).decode(errors="replace")

    def follow_logs(self, name: str, tail: int = 50) -> Iterator[str]:
        with _translate(f"reading logs of {name}"):
            stream = self.client.containers.get(name).logs(stream=True, follow=True, tail=tail)
            for chunk in stream:
                yield bytes(chunk).decode(errors="replace")

    def timed_logs(self, name: str, since: float | None = None, tail: int | None = None) -> str:
        """The container's lines, each after its RFC 3339 timestamp; from `since` (epoch seconds) on,
        at most the last `tail`; empty when the container is gone."""
        options: dict[str, Any] = {"timestamps": True, "tail": "all" if tail is None else tail}
        if since is not None:
            options["since"] = since
        try:
            raw = self.client.containers.get(name).logs(**options)
        except _docker_errors().NotFound:
            return ""
        except _docker_errors().DockerException as exc:
            raise DockerError(f"reading logs of {name} failed: {exc}; check the Docker Engine.") from exc
        return bytes(raw).decode(errors="replace")

    def call(self, action: str, function: Callable[[], T]) -> T:
        """Run another SDK call with the same error translation."""
        with _translate(action):
            return function()


class DockerExec:
    """One exec with its stdin and output on the engine's hijacked connection (docker exec -i)."""

    def __init__(self, client: Any, exec_id: str, stream: Any, tty: bool) -> None:
        self._client, self._exec_id, self._tty = client, exec_id, tty
        # The SDK hands a SocketIO over the raw socket; reads and writes go to the socket itself.
        self._socket: socket.socket = getattr(stream, "_sock", stream)
        self._pending = b""

    def write(self, data: bytes) -> None:
        with _translate("writing to a command's stdin"):
            self._socket.sendall(data)

    def close_stdin(self) -> None:
        """EOF on the command's stdin; its output keeps coming. Not under a terminal: there the engine
        would end the output with it, and a terminal's EOF is a key (^D) that travels as a byte."""
        if self._tty:
            return
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_WR)

    def read(self) -> tuple[int, bytes] | None:
        """(1 for stdout or 2 for stderr, bytes) as the command writes them; None at its end."""
        if self._tty:
            data = self._recv(65536)
            return (1, data) if data else None
        header = self._exactly(8)  # the engine's multiplexing: stream, 3 zero bytes, big-endian length
        if header is None:
            return None
        stream, length = header[0], int.from_bytes(header[4:8], "big")
        payload = self._exactly(length) if length else b""
        if payload is None:
            return None
        return (2 if stream == 2 else 1), payload

    def _recv(self, size: int) -> bytes:
        try:
            return self._socket.recv(size)
        except OSError:
            return b""

    def _exactly(self, size: int) -> bytes | None:
        chunks, missing = [], size
        while missing:
            chunk = self._recv(missing)
            if not chunk:
                return None
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def resize(self, rows: int, cols: int) -> None:
        if not self._tty:
            return
        with contextlib.suppress(Exception):  # a resize racing the command's end is harmless
            self._client.api.exec_resize(self._exec_id, height=rows, width=cols)

    def exit_code(self) -> int | None:
        """The command's exit code once it ended (the engine may take a moment to record it)."""
        for _ in range(50):
            with _translate("reading a command's exit code"):
                found = self._client.api.exec_inspect(self._exec_id)
            if not found.get("Running") and found.get("ExitCode") is not None:
                return int(found["ExitCode"])
            time.sleep(0.1)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()
        self._client.close()
