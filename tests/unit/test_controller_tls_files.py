"""`shipyard controller`'s TLS files and trusted proxies, and the lab's throwaway CA; no server starts."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner, Result

from shipyard.cli.main import app
from shipyard.controller.server.serving import ServeOptions, trusted_proxies, uvicorn_options
from shipyard.errors import ConfigError
from shipyard.fleet_api.tls import check_server_files, client_ssl_context
from shipyard.lab.tls import TlsFiles, make_throwaway_ca

runner = CliRunner()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_throwaway_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_throwaway_ca(tmp_path_factory.mktemp("other-tls"))


def test_the_throwaway_ca_signs_a_loopback_server_certificate(tls: TlsFiles) -> None:
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert stat.S_IMODE(tls.server_key.stat().st_mode) == 0o600
    assert not list(tls.ca_cert.parent.glob("*ca*key*")), "the CA's key is never written"


def test_matching_files_pass_and_the_ca_loads(tls: TlsFiles) -> None:
    check_server_files(tls.server_cert, tls.server_key)
    assert client_ssl_context(tls.ca_cert).verify_mode.name == "CERT_REQUIRED"


def test_a_key_of_another_certificate_is_refused(tls: TlsFiles, other_tls: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        check_server_files(tls.server_cert, other_tls.server_key)


@pytest.mark.parametrize(
    ("cert_name", "key_name", "needle"),
    [
        ("missing.pem", "server-key.pem", "cannot read the TLS certificate"),
        ("server.pem", "missing.pem", "cannot read the TLS key"),
        ("server-key.pem", "server-key.pem", "is not a PEM certificate"),
        ("server.pem", "server.pem", "is not an unencrypted PEM private key"),
        (".", "server-key.pem", "cannot read the TLS certificate"),
    ],
)
def test_bad_server_files_are_one_sentence(tls: TlsFiles, cert_name: str, key_name: str, needle: str) -> None:
    directory = tls.server_cert.parent
    with pytest.raises(ConfigError, match=needle) as refused:
        check_server_files(directory / cert_name, directory / key_name)
    assert refused.value.message.endswith(".")


def test_a_bundle_without_a_certificate_is_refused(tls: TlsFiles, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    for bundle in (empty, tls.server_key):
        with pytest.raises(ConfigError, match="holds no PEM certificate"):
            client_ssl_context(bundle)


def test_no_proxy_is_trusted_by_default() -> None:
    served = uvicorn_options(ServeOptions())
    assert served["proxy_headers"] is False
    assert served["forwarded_allow_ips"] == []
    assert "ssl_certfile" not in served
    # a SIGTERM never waits on idle TLS connections for long (their close waits for the client otherwise)
    assert served["timeout_graceful_shutdown"] <= 5


def test_named_proxies_and_tls_files_reach_uvicorn(tls: TlsFiles) -> None:
    options = ServeOptions(
        tls_cert=tls.server_cert, tls_key=tls.server_key, forwarded_allow_ips="10.0.0.5, 10.1.0.0/16"
    )
    served = uvicorn_options(options)
    assert served["proxy_headers"] is True
    assert served["forwarded_allow_ips"] == ["10.0.0.5", "10.1.0.0/16"]
    assert (served["ssl_certfile"], served["ssl_keyfile"]) == (str(tls.server_cert), str(tls.server_key))


@pytest.mark.parametrize("text", ["10.0.0.1/8", "proxy.internal", "10.0.0.300"])
def test_a_proxy_that_is_not_an_address_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--forwarded-allow-ips"):
        trusted_proxies(text)


def test_star_trusts_every_client() -> None:
    assert trusted_proxies("*") == ["*"]


def test_half_a_tls_pair_is_refused(tls: TlsFiles) -> None:
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        uvicorn_options(ServeOptions(tls_cert=tls.server_cert))


def run_controller(tmp_path: Path, *args: str) -> Result:
    database = tmp_path / "db" / "controller.db"
    return runner.invoke(app, ["controller", "--db", f"sqlite:///{database}", "--port", "1", *args])


def assert_refused(result: Result, tmp_path: Path, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "db").exists(), "nothing is created before the flags are checked"


def test_controller_command_refuses_a_mismatched_key(
    tls: TlsFiles, other_tls: TlsFiles, tmp_path: Path
) -> None:
    result = run_controller(
        tmp_path, "--tls-cert", str(tls.server_cert), "--tls-key", str(other_tls.server_key)
    )
    assert_refused(result, tmp_path, "does not belong to the certificate")


def test_controller_command_refuses_a_missing_certificate(tls: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = run_controller(tmp_path, "--tls-cert", str(missing), "--tls-key", str(tls.server_key))
    assert_refused(result, tmp_path, f"cannot read the TLS certificate {missing}")


def test_controller_command_refuses_a_key_without_a_certificate(tls: TlsFiles, tmp_path: Path) -> None:
    assert_refused(run_controller(tmp_path, "--tls-key", str(tls.server_key)), tmp_path, "--tls-cert")


def test_controller_command_refuses_a_bad_proxy_list(tmp_path: Path) -> None:
    result = run_controller(tmp_path, "--forwarded-allow-ips", "127.0.0.1,proxy")
    assert_refused(result, tmp_path, "'proxy' is not an IP address")
