"""The aws-kms key provider against a real KMS API: moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_fakes import fake_aws_credentials, moto_server
from typer.testing import CliRunner

from shipyard.cli.secrets_cmd import secrets_app
from shipyard.domain.spec import SecretsSpec
from shipyard.errors import SecretError
from shipyard.secrets.factory import open_store
from shipyard.secrets.kms import KmsKeyProvider
from shipyard.secrets.sealing import host_provider, open_sealed, seal_secrets

pytestmark = pytest.mark.integration

DB_URL = "postgres://app:hunter2@db/app"
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def new_kms_key(endpoint: str) -> str:
    client: Any = boto3.client("kms", region_name=REGION, endpoint_url=endpoint)
    return str(client.create_key(Description="shipyard test")["KeyMetadata"]["KeyId"])


def kms_spec(endpoint: str, key_id: str) -> SecretsSpec:
    return SecretsSpec(provider="aws-kms", kms_key_id=key_id, kms_endpoint=endpoint, region=REGION)


def test_round_trip_through_kms(tmp_path: Path, kms_endpoint: str) -> None:
    spec = kms_spec(kms_endpoint, new_kms_key(kms_endpoint))

    open_store(spec, tmp_path, "production").set("DATABASE_URL", DB_URL)

    document = json.loads((tmp_path / ".shipyard/secrets/production.enc").read_text())
    assert document["provider"] == "aws-kms"
    assert document["key_id"] == spec.kms_key_id
    assert "hunter2" not in json.dumps(document)
    assert open_store(spec, tmp_path, "production").get("DATABASE_URL") == DB_URL


def test_another_kms_key_cannot_decrypt(tmp_path: Path, kms_endpoint: str) -> None:
    open_store(kms_spec(kms_endpoint, new_kms_key(kms_endpoint)), tmp_path, "production").set(
        "TOKEN", "tok-1234"
    )
    stranger = open_store(kms_spec(kms_endpoint, new_kms_key(kms_endpoint)), tmp_path, "production")

    # Real KMS answers IncorrectKeyException, moto AccessDeniedException: both are refusals.
    with pytest.raises(SecretError, match=r"wrong master key|sealed with another key") as caught:
        stranger.get("TOKEN")
    assert "tok-1234" not in caught.value.message


def test_a_tampered_wrapped_key_is_detected_by_kms(tmp_path: Path, kms_endpoint: str) -> None:
    spec = kms_spec(kms_endpoint, new_kms_key(kms_endpoint))
    store = open_store(spec, tmp_path, "production")
    store.set("TOKEN", "tok-1234")
    document = json.loads(store.path.read_text())
    document["wrapped_key"] = document["wrapped_key"][:-8] + "AAAAAAA="
    store.path.write_text(json.dumps(document))

    with pytest.raises(SecretError, match="cannot be decrypted: wrong master key or the file was modified"):
        open_store(spec, tmp_path, "production").get("TOKEN")


def test_rotate_from_a_local_key_to_kms_keeps_values(tmp_path: Path, kms_endpoint: str) -> None:
    key_file = tmp_path / "master.key"
    repo = tmp_path / "app"
    repo.mkdir()
    (repo / "shipyard.yml").write_text(f"app: web\nimage: web\nsecrets:\n  key_file: {key_file}\n")
    runner = CliRunner()
    config = ["--config", str(repo / "shipyard.yml")]
    assert runner.invoke(secrets_app, ["init-key", *config], env={"SHIPYARD_MASTER_KEY": None}).exit_code == 0
    runner.invoke(
        secrets_app, ["set", "DATABASE_URL", *config], input=DB_URL, env={"SHIPYARD_MASTER_KEY": None}
    )
    kms_key = new_kms_key(kms_endpoint)
    (repo / "shipyard.yml").write_text(
        f"app: web\nimage: web\nsecrets:\n  key_file: {key_file}\n"
        f"  kms_endpoint: {kms_endpoint}\n  region: {REGION}\n"
    )

    result = runner.invoke(
        secrets_app, ["rotate", "--new-kms-key-id", kms_key, *config], env={"SHIPYARD_MASTER_KEY": None}
    )

    assert result.exit_code == 0, result.output
    assert f"sealed with key {kms_key}" in result.stderr
    key_file.unlink()
    assert open_store(kms_spec(kms_endpoint, kms_key), repo, "production").get("DATABASE_URL") == DB_URL


def test_an_unknown_kms_key_is_a_clear_error(tmp_path: Path, kms_endpoint: str) -> None:
    spec = kms_spec(kms_endpoint, "11111111-2222-3333-4444-555555555555")

    with pytest.raises(SecretError, match="does not exist"):
        open_store(spec, tmp_path, "production").set("TOKEN", "tok-1234")


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = KmsKeyProvider("any-key", region=REGION, endpoint_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(SecretError, match=f"cannot reach AWS KMS at http://127.0.0.1:{closed_port}"):
        provider.wrap(b"\0" * 32)


def test_a_host_opens_a_release_sealed_with_kms_with_its_own_credentials(
    tmp_path: Path, kms_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealed by the deployer's store; opened by the agent's side with boto3's default chain only."""
    key = new_kms_key(kms_endpoint)
    store = open_store(kms_spec(kms_endpoint, key), tmp_path, "production")
    store.set("DATABASE_URL", DB_URL)
    sealed = seal_secrets(["DATABASE_URL"], store, environ={})
    assert sealed is not None and "hunter2" not in sealed
    assert json.loads(sealed)["provider"] == "aws-kms" and json.loads(sealed)["key_id"] == key

    # The host knows no endpoint or key from shipyard.yml: the header names the key, the
    # environment (an instance role and AWS_REGION in production; moto here) does the rest.
    monkeypatch.setenv("AWS_ENDPOINT_URL", kms_endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    opened = open_sealed(sealed, env="production", names=["DATABASE_URL"], provider_for=host_provider(None))
    assert opened == {"DATABASE_URL": DB_URL}

    # Another KMS key in the header: KMS refuses, the host says so in one sentence without a value.
    other = json.loads(sealed)
    other["key_id"] = new_kms_key(kms_endpoint)
    with pytest.raises(SecretError) as refused:
        open_sealed(json.dumps(other), env=None, names=["DATABASE_URL"], provider_for=host_provider(None))
    assert "AWS KMS refused to decrypt the data key" in refused.value.message
    assert "hunter2" not in refused.value.message
