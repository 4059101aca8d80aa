"""Schemathesis against the controller on uvicorn: every operation, with each token kind and none.

Bounded (a few examples per operation and token, time-boxed) and seeded (derandomized), so it runs in
every `make test` without flaking. It asserts what the OpenAPI document promises: no 5xx, every status
documented for its operation, every body and content type as documented.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
import uvicorn
from controller_fixtures import ADMIN_TOKEN, DIGESTS, controller_settings, spec, wait_for
from github_payloads import push, signed
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.controller.server.app import create_app
from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.ports import free_port

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
# Cases per operation and generation mode (see _fuzz for the token kinds each is sent with).
FULL, PROBE = 8, 4
# Past this many seconds (a busy machine), the remaining operations get PROBE cases: each operation
# and token kind is still covered, and the run stays well under a minute.
BUDGET_S = 25.0
REGISTER_PATHS = {"/api/v1/agent/register", "/api/v1/hosts/register"}
AGENT_PATHS = {"/api/v1/agent/desired", "/api/v1/agent/report"}
WEBHOOK_PATH = "/hooks/github/{app}"
EVENTS_PATH = "/api/v1/jobs/{job_id}/events"
PROTECTED_HOST = "fuzz-host"
# A hook whose repository does not exist: its job fails at fetch at once, so the run has a finished
# job (and the retries the cases ask for end as quickly); its payload URL checks signatures.
HOOK_APP = "fuzz-web"
HOOK_SECRET = "fuzz-webhook-secret-0123456789"


@contextmanager
def serving(controller_db_url: str) -> Iterator[str]:
    """The controller app on a real uvicorn in this process; its base URL."""
    app = create_app(controller_settings(controller_db_url, max_wait=0.5))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fuzzed-controller", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, what="uvicorn to serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Tokens:
    """A token of each kind, and what the fuzzer must not take away from the run (its own tokens)."""

    url: str
    admin: ControllerClient
    by_kind: dict[str, str | None]
    own_ids: set[int]
    # The statuses each operation answered, to show its checks ran on its real answers.
    answered: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def token(self, kind: str) -> str | None:
        if kind == "join":  # one-time: a fresh one for every case
            return self.admin.create_join_token("production").token
        return self.by_kind[kind]

    def spare_token_id(self) -> int:
        return self.admin.create_token("fuzz-spare", "viewer").id


def _tokens(url: str) -> Tokens:
    admin = ControllerClient(url, ADMIN_TOKEN)
    # Records for the positive cases to find: an app with a release, an environment, a deployment.
    release = admin.create_release("registry:5000/web", DIGESTS[0], spec())
    join = admin.create_join_token("production").token
    agent = ControllerClient(url).register_agent(join, PROTECTED_HOST)
    admin.create_deployment(release.id, "production")
    deployer = admin.create_token("fuzz-deployer", "deployer")
    viewer = admin.create_token("fuzz-viewer", "viewer")
    kinds = {
        "admin": ADMIN_TOKEN,
        "deployer": deployer.token,
        "viewer": viewer.token,
        "agent": agent.agent_token,
        "none": None,
    }
    listed = httpx.get(f"{url}/api/v1/tokens", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    _finished_job(url)
    return Tokens(url, admin, kinds, {row["id"] for row in listed.json()})


def _finished_job(url: str) -> None:
    """Job 1, failed at fetch: its events stream ends, it can be retried, not cancelled."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    hook = {
        "app": HOOK_APP,
        "repository": "file:///nonexistent/fuzz-web.git",
        "secret": HOOK_SECRET,
        "pipelines": [{"branch": "main", "environment": "production"}],
    }
    assert httpx.post(f"{url}/api/v1/hooks", json=hook, headers=admin).status_code == 201
    body, headers = signed(HOOK_SECRET, "push", push("main", "1" * 40))
    delivered = httpx.post(f"{url}/hooks/github/{HOOK_APP}", content=body, headers=headers)
    assert delivered.status_code == 202 and delivered.json()["job_id"] == 1, delivered.text

    def failed() -> bool:
        return bool(httpx.get(f"{url}/api/v1/jobs/1", headers=admin).json()["status"] == "failed")

    wait_for(failed, timeout=60, what="job 1 to fail at fetch")


def _kinds(operation: APIOperation) -> tuple[str, list[str]]:
    """The token kind the operation is for, and the other kinds to probe it with."""
    if operation.path in REGISTER_PATHS:
        return "join", ["none", "agent", "admin"]
    if operation.path == WEBHOOK_PATH:  # signed, not authenticated: a token changes nothing
        return "none", ["admin"]
    meant = "agent" if operation.path in AGENT_PATHS else "admin"
    return meant, [kind for kind in ("admin", "deployer", "viewer", "agent", "none") if kind != meant]


def _keep_the_run_s_own_records(case: Case, tokens: Tokens) -> None:
    """Revoking the run's own tokens or removing its agent's host would turn the rest into 401s."""
    parameters = case.path_parameters or {}
    if case.method.upper() != "DELETE":
        return
    if parameters.get("token_id") in tokens.own_ids:
        parameters["token_id"] = tokens.spare_token_id()
    if parameters.get("name") == PROTECTED_HOST:
        parameters["name"] = "fuzz-spare"
    if parameters.get("app") == HOOK_APP:
        parameters["app"] = "fuzz-spare"


def _aim_at_the_hook(case: Case, mode: GenerationMode) -> None:
    """A valid delivery goes to the registered hook, whose signature check the fuzzer cannot pass (401);
    an invalid one keeps its generated app (404 for no hook) or headers (400)."""
    if case.operation.path == WEBHOOK_PATH and mode is GenerationMode.POSITIVE and case.path_parameters:
        case.path_parameters["app"] = HOOK_APP


def _fuzz(operation: APIOperation, mode: GenerationMode, examples: int, tokens: Tokens) -> int:
    """Send `examples` cases of `operation`, validating each answer; the number of requests sent.

    Each case goes with the token kind the operation is for; a valid case also goes with one of the
    other kinds in turn (they are refused before anything else is read, so one case each says enough)."""
    meant, others = _kinds(operation)
    probes = itertools.cycle(others)
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def exchange(case: Case) -> None:
        nonlocal sent
        _keep_the_run_s_own_records(case, tokens)
        _aim_at_the_hook(case, mode)
        if case.headers:  # the token under test, not one the generator made up
            case.headers.pop("Authorization", None)
        kinds = [meant, next(probes)] if mode is GenerationMode.POSITIVE else [meant]
        for kind in kinds:
            bearer = tokens.token(kind)
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            sent += 1
            # An event stream is read until it ends, or for at most `timeout` seconds (20 events).
            answer = case.call_and_validate(base_url=tokens.url, headers=headers, checks=CHECKS, timeout=10)
            tokens.answered[operation.path].add(answer.status_code)

    try:
        exchange()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE
    return sent


def test_the_api_answers_only_as_its_openapi_document_says(controller_db_url: str) -> None:
    with serving(controller_db_url) as url:
        tokens = _tokens(url)
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 30, "every route of the API is fuzzed"
        assert {WEBHOOK_PATH, EVENTS_PATH, "/api/v1/hooks", "/api/v1/jobs"} <= {op.path for op in operations}
        deadline = time.monotonic() + BUDGET_S
        failures: list[str] = []
        sent = 0
        for operation in operations:
            examples = FULL if time.monotonic() < deadline else PROBE
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    sent += _fuzz(operation, mode, examples, tokens)
                except Exception as exc:  # collected, so one run reports every operation that fails
                    failures.append(f"{operation.label}, {mode.value} cases:\n{exc}")
        assert failures == [], "\n\n".join(failures)
        assert sent >= len(operations) * PROBE * 2, "every operation, with several token kinds"
        # The checks ran on a whole event stream, and on the webhook's refusals of unsigned deliveries.
        assert 200 in tokens.answered[EVENTS_PATH], tokens.answered[EVENTS_PATH]
        assert {400, 401, 404} <= tokens.answered[WEBHOOK_PATH], tokens.answered[WEBHOOK_PATH]
        # The run's own tokens still work: the cases above were not all refused for a lost token.
        assert tokens.admin.get_deployment(1).status
