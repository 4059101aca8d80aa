"""The registry adapter against the real registry, and against one that lies about digests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shipyard.adapters.registry import Credentials, RegistryClient, parse_image
from shipyard.errors import NotFoundError, RegistryError
from shipyard.lab.single_host import PushedImages, Registry

pytestmark = pytest.mark.integration

WRONG = "sha256:" + "f" * 64


def client_for(registry: Registry, password: str | None = None) -> RegistryClient:
    return RegistryClient(
        registry.address, Credentials(registry.username, password or registry.password), insecure=True
    )


def test_tag_resolves_to_the_pushed_digest_and_the_digest_is_checked(
    registry: Registry, images: PushedImages
) -> None:
    client = client_for(registry)
    digest = client.resolve(parse_image(images.ref("v1")))
    assert digest.startswith("sha256:")
    assert client.resolve(parse_image(f"{images.repository}@{digest}")) == digest
    with pytest.raises(NotFoundError, match="was not found"):
        client.resolve(parse_image(f"{images.repository}@{WRONG}"))


def test_wrong_password_and_no_credentials_are_clear_errors(registry: Registry, images: PushedImages) -> None:
    with pytest.raises(RegistryError, match="refused the credentials"):
        client_for(registry, "nope").resolve(parse_image(images.ref("v1")))
    with pytest.raises(RegistryError, match="requires a login"):
        RegistryClient(registry.address, None, insecure=True).resolve(parse_image(images.ref("v1")))


class LyingRegistry(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Docker-Content-Digest", WRONG)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lying_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LyingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_registry_answering_another_digest_is_refused(lying_registry: str) -> None:
    asked = "sha256:" + "1" * 64
    client = RegistryClient(lying_registry, None, insecure=True)
    with pytest.raises(RegistryError, match="digest mismatch"):
        client.resolve(parse_image(f"{lying_registry}/web@{asked}"))
