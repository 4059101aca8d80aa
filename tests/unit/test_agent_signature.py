"""An agent that trusts a release key refuses an unsigned or altered release before touching the host."""

from __future__ import annotations

from typing import Any, cast

import pytest

from shipyard.agent.local_host import LocalHost
from shipyard.errors import SignatureError
from shipyard.fleet_api.schemas.agent import DesiredApp
from shipyard.host.context import HostContext
from shipyard.signing import TrustedKeys, generate_private_key, release_payload, sign

SPEC: dict[str, Any] = {"app": "web", "image": "reg:5000/web", "port": 3000}
DIGEST = "sha256:" + "c" * 64


class UntouchableHost:
    """Any use of the host (store, engine, proxy) fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the host was used ({name}) for a refused release")


def desired(signature: str | None, **spec_changes: Any) -> DesiredApp:
    return DesiredApp(
        app="web",
        release_id=7,
        release="r7",
        image="reg:5000/web",
        digest=DIGEST,
        spec={**SPEC, **spec_changes},
        deployment_id=3,
        signature=signature,
    )


@pytest.mark.parametrize("tamper", [None, "unsigned", "spec"])
def test_refused_before_anything_runs(tamper: str | None) -> None:
    key = generate_private_key()
    good = sign(key, release_payload("web", "reg:5000/web", DIGEST, SPEC))
    other_key = generate_private_key()
    host = LocalHost(
        cast(HostContext, UntouchableHost()), trusted_keys=TrustedKeys.of([other_key.public_key()])
    )
    if tamper == "unsigned":
        host.trusted_keys = TrustedKeys.of([key.public_key()])
        app, match = desired(None), "not signed"
    elif tamper == "spec":
        host.trusted_keys = TrustedKeys.of([key.public_key()])
        app, match = desired(good, volumes=["/var/run/docker.sock:/var/run/docker.sock"]), "altered"
    else:
        app, match = desired(good), "does not trust"
    with pytest.raises(SignatureError, match=match):
        host.converge(app, reporter=lambda *_args, **_kwargs: None)  # type: ignore[arg-type]
