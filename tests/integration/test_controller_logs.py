"""No token reaches the controller's log, even from a traceback; each 500 carries a reference.

The controller runs as it does in production, `shipyard controller` on uvicorn in a subprocess (where
tracebacks once printed the request scope, Authorization header included), with one extra route that
fails: create_app is wrapped in the subprocess before the command builds the app.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from controller_fixtures import wait_for

from shipyard.fleet_api.client import ControllerClient
from shipyard.lab.ports import free_port

pytestmark = pytest.mark.integration

FAULT = "/api/v1/test-fault"
RUN_CONTROLLER_WITH_FAULT = f"""
import typer
from fastapi import Request
import shipyard.controller.server.app as controller_app
from shipyard.cli.controller_cmd import controller

original_create_app = controller_app.create_app

def create_app_with_fault(settings, **options):
    app = original_create_app(settings, **options)

    @app.api_route("{FAULT}", methods=["GET", "POST"])
    async def fault(request: Request) -> None:
        raise RuntimeError("cannot serve " + request.headers.get("authorization", "nobody"))

    return app

controller_app.create_app = create_app_with_fault
typer.run(controller)
"""


@dataclass
class Served:
    url: str
    admin_token: str
    process: subprocess.Popen[str]

    def output(self) -> str:
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return output


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port, token_file = free_port(), tmp_path / "admin.token"
    command = [sys.executable, "-c", RUN_CONTROLLER_WITH_FAULT, "--db", f"sqlite:///{tmp_path / 'c.db'}"]
    command += ["--port", str(port), "--bootstrap-token-file", str(token_file), "--access-log"]
    env = {**os.environ, "SHIPYARD_ADMIN_TOKEN": ""}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        wait_for(answers, timeout=60, what="the controller")
        assert process.poll() is None, process.communicate()[0]
        yield Served(url, token_file.read_text().strip(), process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_500s_are_answered_with_a_reference_and_no_token_reaches_the_log(served: Served) -> None:
    admin = ControllerClient(served.url, served.admin_token)
    deployer_token = admin.create_token("ci", "deployer").token
    join_token = admin.create_join_token("production").token
    spent_join_token = admin.create_join_token("production").token
    agent_token = ControllerClient(served.url).register_agent(spent_join_token, "h1").agent_token
    tokens = {
        "admin": served.admin_token,
        "deployer": deployer_token,
        "join": join_token,
        "spent join": spent_join_token,
        "agent": agent_token,
    }
    references = []
    with httpx.Client(base_url=served.url, timeout=30) as http:
        for kind, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            for method in ("GET", "POST"):
                answer = http.request(method, FAULT, headers=headers, params={"token": token}, json={})
                if method == "POST" and kind in ("join", "spent join"):
                    # a join token is no API token: refused before the route, and before the body is read
                    assert answer.status_code == 401, answer.text
                    continue
                assert answer.status_code == 500, (kind, method, answer.text)
                body = answer.json()
                assert body["kind"] == "InternalError"
                assert body["reference"] in body["detail"]
                assert token not in answer.text
                references.append(body["reference"])
            # and the routes' own refusals of a token in the wrong place
            assert http.get("/api/v1/hosts/h1", headers={"Authorization": token}).status_code == 401

    output = served.output()
    assert len(set(references)) == len(references) == 8
    for reference in references:
        assert reference in output, f"reference {reference} is in the log"
    for kind, token in tokens.items():
        assert token not in output, f"the {kind} token reached the log"
        assert token[4:] not in output, f"the {kind} token's secret part reached the log"
    assert "syg_***" in output and "sya_***" in output, "the log still says which kind of token it was"
    assert output.count("Traceback (most recent call last)") == len(references), "each 500 is logged once"
    assert "cannot serve Bearer ***" in output
    assert f'"GET {FAULT}?token=sya_*** HTTP/1.1" 500' in output, "uvicorn's access log is masked too"
