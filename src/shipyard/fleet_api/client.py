"""A typed HTTP client for the controller API, used by the CLI and the agent.

Every failure is translated here, in one place: unreachable or 5xx -> ControllerError, 401 ->
TokenRejectedError and 403 -> PermissionDeniedError (both ControllerAuthError, so callers can tell a
refusal from an outage), 404 -> NotFoundError, 409 for a held deployment or lock -> LockedError,
422 -> ConfigError.

A client that opens its own connection takes the URL policy (https, or http to loopback only unless
insecure_http) and verifies the controller's certificate against `ca_file` (the system's CAs without).
Given several URLs (controller replicas), it fails over between them as endpoints.py decides.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel

from shipyard.errors import (
    ConfigError,
    ControllerAuthError,
    ControllerError,
    LockedError,
    NotFoundError,
    ShipyardError,
)
from shipyard.fleet_api.endpoints import Endpoints, Failure, controller_urls, fails_over
from shipyard.fleet_api.exec_channel import ExecChannel, open_channel
from shipyard.fleet_api.schemas.admin import AuditOut, JoinTokenCreated, LockOut, TokenCreated, TokenOut
from shipyard.fleet_api.schemas.agent import (
    AgentRegistered,
    AppReport,
    DesiredState,
    HostVersions,
    PruneReport,
    ReportAck,
)
from shipyard.fleet_api.schemas.deployments import DeploymentOut, DeploymentPlanOut
from shipyard.fleet_api.schemas.fleet import HostOut, MaintenanceOut, PruneOut
from shipyard.fleet_api.schemas.logs import AgentLogAck, LogQuery, LogRequestOut
from shipyard.fleet_api.schemas.releases import ReleaseOut
from shipyard.fleet_api.schemas.tasks import TaskOut, TaskUpdate
from shipyard.fleet_api.tls import client_ssl_context, refusal_reason

Model = TypeVar("Model", bound=BaseModel)
log = structlog.get_logger("shipyard.controller.client")
API = "/api/v1"


class TokenRejectedError(ControllerAuthError):
    """HTTP 401: the token is missing, unknown, revoked or expired (or the host was removed)."""


class PermissionDeniedError(ControllerAuthError):
    """HTTP 403: the token is valid but may not do this."""


def _app_body(report: AppReport) -> dict[str, Any]:
    """An app's report; `maintenance` only when set, so a controller that predates it accepts the rest."""
    return report.model_dump(exclude=None if report.maintenance else {"maintenance"})


def error_for(response: httpx.Response) -> ShipyardError:
    try:
        body = response.json()
        detail, kind = str(body.get("detail", "")), str(body.get("kind", ""))
    except ValueError:
        detail, kind = response.text[:200], ""
    message = detail or f"the controller answered HTTP {response.status_code}."
    if response.status_code == 404:
        return NotFoundError(message)
    if response.status_code == 409 and kind == "LockedError":
        return LockedError(message)
    if response.status_code == 422:
        return ConfigError(message)
    if response.status_code == 401:
        return TokenRejectedError(f"the controller refused the token: {message}")
    if response.status_code == 403:
        return PermissionDeniedError(f"the controller refused the token: {message}")
    return ControllerError(f"the controller answered HTTP {response.status_code}: {message}")


def transport_error(url: str, exc: httpx.HTTPError) -> ControllerError:
    """One sentence for a request to `url` that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return ControllerError(f"the controller at {url} did not answer in time; is it overloaded?")
    if tls_problem := refusal_reason(exc):
        return ControllerError(f"the controller at {url} {tls_problem}.")
    if isinstance(exc, httpx.RemoteProtocolError) and url.startswith("http://"):
        return ControllerError(
            f"the controller at {url} closed the connection without answering; "
            "if it serves https, use an https:// URL."
        )
    return ControllerError(f"cannot reach the controller at {url} ({type(exc).__name__}).")


class ControllerClient:
    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None = None,
        *,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
        ca_file: Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        """`url`: one controller URL, or several (a sequence, or comma-separated) of replicas to fail
        over between (endpoints.py). `http`: a caller-made client for one URL (in-process tests);
        otherwise one is opened per URL, when first used, under the URL policy."""
        self._clients: list[httpx.Client | None]
        if http is None:
            urls = controller_urls(url, insecure_http=insecure_http)
            self._verify = client_ssl_context(ca_file)
            self._clients = [None] * len(urls)
            self._owns_http = True
        else:
            urls = (url.rstrip("/"),) if isinstance(url, str) else tuple(url)
            self._clients = [http]
            self._owns_http = False
        self._endpoints = Endpoints(urls)
        self._timeout = timeout
        self._token = token
        # An agent's Docker Engine, haproxy, kernel and shipyard versions, sent with registration and reports.
        self.host_versions: HostVersions | None = None

    @property
    def url(self) -> str:
        """The controller URL in use: the one that answered last."""
        return self._endpoints.urls[self._endpoints.current]

    @property
    def urls(self) -> tuple[str, ...]:
        return self._endpoints.urls

    def close(self) -> None:
        if self._owns_http:
            for client in self._clients:
                if client is not None:
                    client.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def _http(self) -> httpx.Client:
        """The HTTP client of the URL in use (streams, which fail over by reconnecting: move_on)."""
        return self._http_for(self._endpoints.current)

    def move_on(self) -> None:
        """Use the next URL from now on (a stream broke: its replica may be gone)."""
        self._endpoints.answered(self._endpoints.attempts()[1 % len(self._endpoints.urls)])

    def _http_for(self, index: int) -> httpx.Client:
        client = self._clients[index]
        if client is None:
            client = httpx.Client(
                base_url=self._endpoints.urls[index], timeout=self._timeout, verify=self._verify
            )
            self._clients[index] = client
        return client

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        timeout: float | None = None,
        prefix: str = API,
        repeatable: bool = False,
    ) -> Any:
        bearer = token or self._token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        attempts = self._endpoints.attempts()
        for position, index in enumerate(attempts):
            last = position == len(attempts) - 1
            url = self._endpoints.urls[index]
            try:
                response = self._http_for(index).request(
                    method, prefix + path, json=json, params=params, headers=headers, **extra
                )
            except httpx.HTTPError as exc:
                reached = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if not last and fails_over(method, Failure(reached), repeatable=repeatable):
                    log.warning("controller unreachable; trying the next", url=url, error=type(exc).__name__)
                    continue
                raise transport_error(url, exc) from exc
            if not response.is_success:
                failure = Failure(True, response.status_code)
                if not last and fails_over(method, failure, repeatable=repeatable):
                    log.warning("controller failed; trying the next", url=url, status=response.status_code)
                    continue
                raise error_for(response)
            self._endpoints.answered(index)
            return response.json() if response.content else None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _one(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        return model.model_validate(self._call(method, path, **kwargs))

    def _many(self, model: type[Model], path: str, **params: Any) -> list[Model]:
        query = {key: value for key, value in params.items() if value is not None}
        return [model.model_validate(item) for item in self._call("GET", path, params=query)]

    def healthz(self) -> None:
        """Returns when the controller and its database answer; raises ControllerError otherwise."""
        self._call("GET", "/healthz", prefix="")

    # releases and deployments
    def create_release(
        self,
        image: str,
        digest: str,
        spec: dict[str, Any],
        *,
        signature: str | None = None,
        git_sha: str | None = None,
    ) -> ReleaseOut:
        body: dict[str, Any] = {"image": image, "digest": digest, "spec": spec}
        if signature is not None:
            body["signature"] = signature
        if git_sha is not None:
            body["git_sha"] = git_sha
        return self._one(ReleaseOut, "POST", "/releases", json=body)

    def list_releases(self, app: str | None = None) -> list[ReleaseOut]:
        return self._many(ReleaseOut, "/releases", app=app)

    def get_release(self, release_id: int) -> ReleaseOut:
        return self._one(ReleaseOut, "GET", f"/releases/{release_id}")

    def create_deployment(
        self, release_id: int, environment: str, *, queue: bool = False, sealed_secrets: str | None = None
    ) -> DeploymentOut:
        body: dict[str, object] = {"release_id": release_id, "environment": environment, "queue": queue}
        if sealed_secrets is not None:
            body["sealed_secrets"] = sealed_secrets
        return self._one(DeploymentOut, "POST", "/deployments", json=body)

    def plan_deployment(
        self, image: str, digest: str, spec: dict[str, Any], environment: str
    ) -> DeploymentPlanOut:
        """What deploying a release not recorded yet would do; the controller stores nothing."""
        body = {"image": image, "digest": digest, "spec": spec, "environment": environment}
        return self._one(DeploymentPlanOut, "POST", "/deployments/plan", json=body)

    def plan_rollback(self, app: str, environment: str, release_id: int | None = None) -> DeploymentPlanOut:
        body = {"app": app, "environment": environment, "release_id": release_id}
        return self._one(DeploymentPlanOut, "POST", "/rollback/plan", json=body)

    def get_deployment(self, deployment_id: int) -> DeploymentOut:
        return self._one(DeploymentOut, "GET", f"/deployments/{deployment_id}")

    def list_deployments(
        self, *, app: str | None = None, environment: str | None = None, status: str | None = None
    ) -> list[DeploymentOut]:
        return self._many(DeploymentOut, "/deployments", app=app, environment=environment, status=status)

    def pause(self, deployment_id: int) -> DeploymentOut:
        return self._one(DeploymentOut, "POST", f"/deployments/{deployment_id}/pause")

    def resume(self, deployment_id: int) -> DeploymentOut:
        return self._one(DeploymentOut, "POST", f"/deployments/{deployment_id}/resume")

    def abort(self, deployment_id: int) -> DeploymentOut:
        return self._one(DeploymentOut, "POST", f"/deployments/{deployment_id}/abort")

    def rollback(self, app: str, environment: str, release_id: int | None = None) -> DeploymentOut:
        body = {"app": app, "environment": environment, "release_id": release_id}
        return self._one(DeploymentOut, "POST", "/rollback", json=body)

    # fleet and administration
    def hosts(self, group: str | None = None) -> list[HostOut]:
        return self._many(HostOut, "/hosts", group=group)

    def request_prune(self, app: str, environment: str) -> PruneOut:
        return self._one(PruneOut, "POST", "/prunes", json={"app": app, "environment": environment})

    def get_prune(self, prune_id: int) -> PruneOut:
        return self._one(PruneOut, "GET", f"/prunes/{prune_id}")

    def create_task(self, app: str, environment: str, argv: list[str], host: str | None = None) -> TaskOut:
        body = {"app": app, "environment": environment, "argv": argv, "host": host}
        return self._one(TaskOut, "POST", "/tasks", json=body)

    def get_task(self, task_id: int, after: int = 0) -> TaskOut:
        return self._one(TaskOut, "GET", f"/tasks/{task_id}", params={"after": after})

    def cancel_task(self, task_id: int) -> TaskOut:
        return self._one(TaskOut, "POST", f"/tasks/{task_id}/cancel")

    def create_exec(self, app: str, environment: str, host: str, argv: list[str]) -> TaskOut:
        body = {"app": app, "environment": environment, "host": host, "argv": argv}
        return self._one(TaskOut, "POST", "/exec", json=body)

    def exec_channel(self, task_id: int, *, pickup_timeout: float) -> ExecChannel:
        """The client side of exec session `task_id` (the controller gives its agent `pickup_timeout` s)."""
        path = f"{API}/exec/{task_id}?timeout={pickup_timeout:g}"
        return open_channel(self.url, path, self._token, self._ssl_context(), self._timeout)

    def agent_exec_channels(self, task_id: int) -> Iterator[ExecChannel]:
        """The agent side of exec session `task_id`, on each controller URL in turn (a session lives in
        the memory of the controller process its client reached)."""
        for url in self._endpoints.urls:
            try:
                yield open_channel(url, f"{API}/agent/exec/{task_id}", self._token, self._ssl_context())
            except ControllerError as exc:
                log.warning("exec relay unreachable", url=url, error=str(exc))

    def _ssl_context(self) -> ssl.SSLContext | None:
        verify = getattr(self, "_verify", None)
        return verify if isinstance(verify, ssl.SSLContext) else None

    def enter_maintenance(self, app: str, environment: str, message: str = "") -> MaintenanceOut:
        body = {"app": app, "environment": environment, "message": message}
        return self._one(MaintenanceOut, "POST", "/maintenance", json=body)

    def leave_maintenance(self, app: str, environment: str) -> None:
        self._call("DELETE", f"/maintenance/{app}/{environment}")

    def maintenance(self, environment: str | None = None) -> list[MaintenanceOut]:
        params = {"environment": environment} if environment else {}
        return self._many(MaintenanceOut, "/maintenance", **params)

    def delete_host(self, name: str) -> None:
        """Forget the host and revoke its agent token (admin)."""
        self._call("DELETE", f"/hosts/{name}")

    def lock(self, app: str, environment: str, reason: str) -> LockOut:
        return self._one(
            LockOut, "POST", "/locks", json={"app": app, "environment": environment, "reason": reason}
        )

    def unlock(self, app: str, environment: str) -> None:
        self._call("DELETE", f"/locks/{app}/{environment}")

    def locks(self) -> list[LockOut]:
        return self._many(LockOut, "/locks")

    def audit(self, *, limit: int = 100, action: str | None = None) -> list[AuditOut]:
        return self._many(AuditOut, "/audit", limit=limit, action=action)

    def create_token(self, name: str, role: str, *, apps: list[str] | None = None) -> TokenCreated:
        body: dict[str, Any] = {"name": name, "role": role}
        if apps is not None:
            body["apps"] = apps
        return self._one(TokenCreated, "POST", "/tokens", json=body)

    def tokens(self) -> list[TokenOut]:
        return self._many(TokenOut, "/tokens")

    def create_join_token(self, group: str, *, expires_in: float | None = 3600.0) -> JoinTokenCreated:
        body = {"group": group, "expires_in": expires_in}
        return self._one(JoinTokenCreated, "POST", "/join-tokens", json=body)

    # agent side
    def register_agent(
        self,
        join_token: str,
        name: str,
        *,
        address: str = "",
        labels: dict[str, str] | None = None,
        agent_version: str = "",
    ) -> AgentRegistered:
        body: dict[str, Any] = {
            "name": name,
            "address": address,
            "labels": labels or {},
            "agent_version": agent_version,
        }
        if self.host_versions is not None:
            body["versions"] = self.host_versions.model_dump()
        return self._one(AgentRegistered, "POST", "/agent/register", json=body, token=join_token)

    def desired(self, version: int | None = None, wait: float = 0.0) -> DesiredState:
        params: dict[str, Any] = {"wait": wait} if version is None else {"wait": wait, "version": version}
        # The read timeout must outlast the long-poll itself.
        return self._one(
            DesiredState, "GET", "/agent/desired", params=params, timeout=wait + 10.0 if wait else None
        )

    def task_update(self, task_id: int, update: TaskUpdate) -> None:
        """An agent's word on a task of its host (started, output lines, its end)."""
        self._call("POST", f"/agent/tasks/{task_id}", json=update.model_dump())

    def post_logs(
        self, request_id: int, lines: list[str], *, finished: bool = False, message: str = ""
    ) -> bool:
        body = {"request": request_id, "lines": lines, "finished": finished, "message": message}
        return self._one(AgentLogAck, "POST", "/agent/logs", json=body).wanted

    # log requests (CLI side)
    def request_logs(self, app: str, environment: str, query: LogQuery) -> LogRequestOut:
        body = {"app": app, "environment": environment, **query.model_dump(exclude_none=True)}
        return self._one(LogRequestOut, "POST", "/logs", json=body)

    def read_logs(self, request_id: int, after: int = 0) -> LogRequestOut:
        return self._one(LogRequestOut, "GET", f"/logs/{request_id}", params={"after": after})

    def close_logs(self, request_id: int) -> None:
        self._call("DELETE", f"/logs/{request_id}")

    def report(
        self,
        apps: list[AppReport],
        *,
        agent_version: str | None = None,
        prunes: list[PruneReport] | None = None,
        disk_free: int | None = None,
    ) -> ReportAck:
        body: dict[str, Any] = {"agent_version": agent_version, "apps": [_app_body(app) for app in apps]}
        if prunes:
            body["prunes"] = [prune.model_dump() for prune in prunes]
        if disk_free is not None:
            body["disk_free"] = disk_free
        if self.host_versions is not None:
            body["versions"] = self.host_versions.model_dump()
        # A report states what the host runs: sending it again to another replica is harmless.
        return self._one(ReportAck, "POST", "/agent/report", json=body, repeatable=True)
