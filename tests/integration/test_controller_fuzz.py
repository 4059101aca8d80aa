"""Schemathesis against the controller on uvicorn: every operation, with each token kind and none.

Bounded (a few examples per operation and token, time-boxed) and seeded (derandomized), so it runs in
every `make test` without flaking. It asserts what the OpenAPI document promises: no 5xx, every status
documented for its operation, every body and content type as documented.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
import uvicorn
from controller_fixtures import ADMIN_TOKEN, DIGESTS, controller_settings, spec, wait_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.controller.app import create_app
from shipyard.controller.client import ControllerClient
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
PROTECTED_HOST = "fuzz-host"


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
    return Tokens(url, admin, kinds, {row["id"] for row in listed.json()})


def _kinds(operation: APIOperation) -> tuple[str, list[str]]:
    """The token kind the operation is for, and the other kinds to probe it with."""
    if operation.path in REGISTER_PATHS:
        return "join", ["none", "agent", "admin"]
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
        if case.headers:  # the token under test, not one the generator made up
            case.headers.pop("Authorization", None)
        kinds = [meant, next(probes)] if mode is GenerationMode.POSITIVE else [meant]
        for kind in kinds:
            bearer = tokens.token(kind)
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            sent += 1
            case.call_and_validate(base_url=tokens.url, headers=headers, checks=CHECKS, timeout=10)

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
        assert len(operations) >= 20, "every route of the API is fuzzed"
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
        # The run's own tokens still work: the cases above were not all refused for a lost token.
        assert tokens.admin.get_deployment(1).status
