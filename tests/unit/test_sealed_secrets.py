"""Secrets sealed per release and environment: sealing, checking, opening, and the agent's use of them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_agent_fakes import desired_app

from shipyard.agent import sealed_store
from shipyard.agent.local_host import LocalHost
from shipyard.domain.spec import SecretsSpec, parse_spec
from shipyard.errors import ConfigError, SecretError
from shipyard.host.context import HostContext
from shipyard.host.interpreter import SilentReporter
from shipyard.secrets.envelope import Envelope
from shipyard.secrets.factory import open_store
from shipyard.secrets.local_key import create_key_file
from shipyard.secrets.masking import forget_registered_secrets, mask
from shipyard.secrets.sealing import MAX_SEALED_CHARS, check_sealed, host_provider, open_sealed, seal_secrets

DB_URL = "postgres://app:hunter2@db/app"
API_KEY = "sk-live-0123456789"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "production.key"
    create_key_file(path)
    return path


@pytest.fixture
def repo(tmp_path: Path, key_file: Path) -> Path:
    root = tmp_path / "repo"
    store = open_store(SecretsSpec(key_file=str(key_file)), root, "production", environ={})
    store.set("DATABASE_URL", DB_URL)
    store.set("API_KEY", API_KEY)
    store.set("UNUSED", "not-for-this-release")
    return root


def sealed_from(repo: Path, key_file: Path, names: list[str], env: str = "production") -> str:
    store = open_store(SecretsSpec(key_file=str(key_file)), repo, env, environ={})
    sealed = seal_secrets(names, store, environ={})
    assert sealed is not None
    return sealed


def test_exactly_the_release_names_are_sealed_for_the_environment(repo: Path, key_file: Path) -> None:
    sealed = sealed_from(repo, key_file, ["DATABASE_URL", "API_KEY"])

    envelope = check_sealed(sealed, "production")
    assert envelope.env == "production" and envelope.provider == "local"
    assert "hunter2" not in sealed and API_KEY not in sealed
    opened = open_sealed(
        sealed, env="production", names=["DATABASE_URL", "API_KEY"], provider_for=host_provider(key_file)
    )
    assert opened == {"DATABASE_URL": DB_URL, "API_KEY": API_KEY}
    # The third value of the store is not in the envelope at all.
    everything = envelope.open(host_provider(key_file)(envelope).unwrap(envelope.wrapped_key))
    assert sorted(everything) == ["API_KEY", "DATABASE_URL"]


def test_each_sealing_uses_a_fresh_data_key(repo: Path, key_file: Path) -> None:
    first = json.loads(sealed_from(repo, key_file, ["DATABASE_URL"]))
    second = json.loads(sealed_from(repo, key_file, ["DATABASE_URL"]))
    store_file = json.loads((repo / ".shipyard/secrets/production.enc").read_text())
    assert len({first["wrapped_key"], second["wrapped_key"], store_file["wrapped_key"]}) == 3


def test_no_names_seal_nothing_and_need_no_key(tmp_path: Path) -> None:
    store = open_store(SecretsSpec(key_file=str(tmp_path / "absent.key")), tmp_path, "production", environ={})
    assert seal_secrets([], store, environ={}) is None
    assert open_sealed(None, env=None, names=[], provider_for=host_provider(None)) == {}


def test_an_exported_value_fills_a_name_the_store_lacks(repo: Path, key_file: Path) -> None:
    store = open_store(SecretsSpec(key_file=str(key_file)), repo, "production", environ={})
    sealed = seal_secrets(["DATABASE_URL", "FROM_CI"], store, environ={"FROM_CI": "ci-value-42"})
    opened = open_sealed(
        sealed, env="production", names=["FROM_CI", "DATABASE_URL"], provider_for=host_provider(key_file)
    )
    assert opened == {"FROM_CI": "ci-value-42", "DATABASE_URL": DB_URL}


def test_a_name_set_nowhere_stops_the_sealing(repo: Path, key_file: Path) -> None:
    store = open_store(SecretsSpec(key_file=str(key_file)), repo, "production", environ={})
    with pytest.raises(SecretError) as missing:
        seal_secrets(["DATABASE_URL", "NOT_SET"], store, environ={})
    assert "NOT_SET" in missing.value.message and "--env production" in missing.value.message


def test_the_controller_refuses_an_envelope_of_another_environment(repo: Path, key_file: Path) -> None:
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    with pytest.raises(ConfigError) as refused:
        check_sealed(sealed, "staging")
    assert "sealed for env production, not staging" in refused.value.message


@pytest.mark.parametrize(
    "text",
    [
        '{"format": "other"}',
        "not json",
        '{"format": "shipyard-secrets", "version": 1}',
        "x" * (MAX_SEALED_CHARS + 1),
    ],
)
def test_the_controller_refuses_what_is_not_an_envelope(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_sealed(text, "production")
    assert refused.value.message.endswith(".")
    assert "\n" not in refused.value.message


def test_a_moved_envelope_does_not_open(repo: Path, key_file: Path) -> None:
    sealed = json.loads(sealed_from(repo, key_file, ["DATABASE_URL"]))
    sealed["env"] = "staging"  # the header is authenticated: moving it to another env breaks it
    with pytest.raises(SecretError) as failed:
        open_sealed(
            json.dumps(sealed), env=None, names=["DATABASE_URL"], provider_for=host_provider(key_file)
        )
    assert "do not open with this host's key" in failed.value.message
    assert "hunter2" not in failed.value.message


def test_a_tampered_envelope_does_not_open(repo: Path, key_file: Path) -> None:
    sealed = json.loads(sealed_from(repo, key_file, ["DATABASE_URL"]))
    ciphertext = bytearray(base64.b64decode(sealed["ciphertext"]))
    ciphertext[0] ^= 1
    sealed["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()
    with pytest.raises(SecretError) as failed:
        open_sealed(
            json.dumps(sealed), env="production", names=["DATABASE_URL"], provider_for=host_provider(key_file)
        )
    assert "do not open" in failed.value.message


def test_another_master_key_does_not_open_it(repo: Path, key_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    create_key_file(other)
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    with pytest.raises(SecretError) as failed:
        open_sealed(sealed, env="production", names=["DATABASE_URL"], provider_for=host_provider(other))
    message = failed.value.message
    assert "do not open with this host's key" in message and "master key of env production" in message


def test_a_name_missing_from_the_envelope_is_named(repo: Path, key_file: Path) -> None:
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    with pytest.raises(SecretError) as failed:
        open_sealed(
            sealed, env="production", names=["DATABASE_URL", "API_KEY"], provider_for=host_provider(key_file)
        )
    assert "lack API_KEY" in failed.value.message and API_KEY not in failed.value.message


def test_a_local_envelope_needs_the_agents_key_file(repo: Path, key_file: Path) -> None:
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    with pytest.raises(SecretError) as failed:
        open_sealed(sealed, env=None, names=["DATABASE_URL"], provider_for=host_provider(None))
    assert "--secrets-key-file" in failed.value.message


def test_an_unknown_provider_is_refused_in_one_sentence(repo: Path, key_file: Path) -> None:
    document = json.loads(sealed_from(repo, key_file, ["DATABASE_URL"]))
    document["provider"] = "vault"
    envelope = Envelope.from_json(json.dumps(document), source="test")
    with pytest.raises(SecretError) as failed:
        host_provider(key_file)(envelope)
    assert "'vault'" in failed.value.message


def test_opened_values_are_masked(repo: Path, key_file: Path) -> None:
    forget_registered_secrets()
    sealed = sealed_from(repo, key_file, ["API_KEY"])
    forget_registered_secrets()
    open_sealed(sealed, env="production", names=["API_KEY"], provider_for=host_provider(key_file))
    assert API_KEY not in mask(f"started with {API_KEY}")


# The agent's side: LocalHost opens the envelope the desired state carries, never its environment.


def test_the_agent_opens_the_release_envelope_with_its_key(
    repo: Path, key_file: Path, tmp_path: Path
) -> None:
    host = LocalHost(
        HostContext(home=tmp_path / "home"),
        environ={"DATABASE_URL": "from-the-agents-env"},
        secrets_key_file=key_file,
    )
    spec = parse_spec({"app": "web", "image": "127.0.0.1:5000/web", "env": {"secret": ["DATABASE_URL"]}})
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    assert host.release_secrets(spec, sealed) == {"DATABASE_URL": DB_URL}


def test_a_release_naming_secrets_without_an_envelope_fails_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # The agent's own environment holds the name: it must not be read.
    host = LocalHost(HostContext(home=home), environ={"DATABASE_URL": "from-the-agents-env"})
    desired = desired_app()
    desired.spec["env"] = {"secret": ["DATABASE_URL"]}
    with pytest.raises(SecretError) as failed:
        host.converge(desired, SilentReporter())
    message = failed.value.message
    assert "names secrets (DATABASE_URL) but came with no sealed values" in message
    assert "from-the-agents-env" not in message
    assert not home.exists()  # no store opened, no lock taken, no step run


def test_an_envelope_that_does_not_open_fails_the_release_before_anything_runs(
    repo: Path, key_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    create_key_file(other)
    home = tmp_path / "home"
    host = LocalHost(HostContext(home=home), secrets_key_file=other)
    desired = desired_app()
    desired.spec["env"] = {"secret": ["DATABASE_URL"]}
    desired = desired.model_copy(update={"sealed_secrets": sealed_from(repo, key_file, ["DATABASE_URL"])})
    with pytest.raises(SecretError) as failed:
        host.converge(desired, SilentReporter())
    assert "do not open with this host's key" in failed.value.message
    assert not home.exists()


def test_the_host_keeps_the_envelope_for_a_restart(repo: Path, key_file: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    sealed_store.keep(home, "web", "r7", sealed)
    path = home / sealed_store.SEALED_DIR / "web" / "r7.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sealed_store.kept(home, "web", "r7") == sealed
    assert sealed_store.kept(home, "web", "r8") is None
    assert sealed_store.kept(home, "web", None) is None
    sealed_store.keep(home, "web", "r7", None)  # the same release, deployed again without secrets
    assert sealed_store.kept(home, "web", "r7") is None


def test_the_host_keeps_only_the_envelopes_of_the_new_and_the_serving_release(
    repo: Path, key_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    sealed = sealed_from(repo, key_file, ["DATABASE_URL"])
    for release in ("r1", "r2"):
        sealed_store.keep(home, "web", release, sealed)
    sealed_store.keep(home, "web", "r3", sealed, serving="r2")
    assert sorted(p.name for p in (home / sealed_store.SEALED_DIR / "web").iterdir()) == [
        "r2.json",
        "r3.json",
    ]
    sealed_store.keep(home, "api", "r4", sealed)  # another app's are its own
    assert sealed_store.kept(home, "web", "r3") == sealed
