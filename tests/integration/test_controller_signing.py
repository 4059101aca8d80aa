"""Releases signed by the controller's key or by CI, carried to the agents in the desired state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from controller_fixtures import DIGESTS, Harness, controller_settings, running_controller, spec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shipyard.domain.spec import parse_spec, spec_snapshot
from shipyard.errors import ConfigError, SignatureError
from shipyard.signing import TrustedKeys, generate_private_key, release_payload, sign

pytestmark = pytest.mark.integration
pytest_plugins = ["conftest_controller"]

CONTROLLER_KEY = generate_private_key()


@pytest.fixture
def signing_harness(controller_db_url: str) -> Iterator[Harness]:
    settings = controller_settings(controller_db_url, signing_key=CONTROLLER_KEY)
    with running_controller(settings) as running:
        yield running


def canonical(app: str = "web") -> dict[str, object]:
    return spec_snapshot(parse_spec(spec(app)))


def test_the_controller_signs_releases_and_agents_receive_the_signature(signing_harness: Harness) -> None:
    agent = signing_harness.add_agent("h1")
    release = signing_harness.admin.create_release("registry:5000/web", DIGESTS[0], spec())
    assert release.signature is not None and release.signature.startswith("ed25519:")
    trusted = TrustedKeys.of([CONTROLLER_KEY.public_key()])
    payload = release_payload("web", release.image, release.digest, release.spec)
    trusted.verify(payload, release.signature, what="release")
    deployment = signing_harness.admin.create_deployment(release.id, "production")
    signing_harness.deploy_until(deployment.id, {"succeeded"})
    [desired] = agent.client.desired().apps
    trusted.verify(
        release_payload(desired.app, desired.image, desired.digest, desired.spec),
        desired.signature,
        what="desired release",
    )


def test_a_ci_signature_is_kept_and_only_a_canonical_spec_may_be_signed(signing_harness: Harness) -> None:
    ci_key: Ed25519PrivateKey = generate_private_key()
    snapshot = canonical()
    signature = sign(ci_key, release_payload("web", "registry:5000/web", DIGESTS[1], snapshot))
    release = signing_harness.admin.create_release(
        "registry:5000/web", DIGESTS[1], snapshot, signature=signature
    )
    assert release.signature == signature
    TrustedKeys.of([ci_key.public_key()]).verify(
        release_payload("web", release.image, release.digest, release.spec), release.signature, what="r"
    )
    before = len(signing_harness.admin.list_releases())
    with pytest.raises(ConfigError, match="canonical snapshot"):
        signing_harness.admin.create_release("registry:5000/web", DIGESTS[2], spec(), signature=signature)
    assert len(signing_harness.admin.list_releases()) == before


def test_without_a_key_releases_are_unsigned_and_a_trusting_agent_refuses_them(
    controller_harness: Harness,
) -> None:
    release = controller_harness.admin.create_release("registry:5000/web", DIGESTS[3], spec())
    assert release.signature is None
    with pytest.raises(SignatureError, match="not signed"):
        TrustedKeys.of([CONTROLLER_KEY.public_key()]).verify(
            release_payload("web", release.image, release.digest, release.spec), None, what="r"
        )
