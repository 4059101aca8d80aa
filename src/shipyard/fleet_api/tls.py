"""TLS for the controller: the client's trust (a CA bundle) and the server's certificate and key.

Every problem with a file becomes one ConfigError sentence naming the file and the flag to fix, before
a connection is tried or the server starts.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shipyard.errors import ConfigError

CA_FILE_ENV = "SHIPYARD_CA_FILE"
INSECURE_HTTP_ENV = "SHIPYARD_INSECURE_HTTP"


def _read(path: Path, what: str, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot read the {what} {path} ({reason}); pass {flag} with a readable file."
        ) from exc


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verification against `ca_file` only, or against the system's CAs when None."""
    if ca_file is None:
        return ssl.create_default_context()
    text = _read(ca_file, "CA bundle", "--ca-file").decode("ascii", errors="replace")
    # Only this bundle: an empty one must not fall back to the system's CAs.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError("no certificate")
        context.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"the CA bundle {ca_file} holds no PEM certificate; pass --ca-file with the CA that signed "
            "the controller's certificate."
        ) from exc
    return context


def check_server_files(cert_file: Path, key_file: Path) -> None:
    """Both files readable, a PEM certificate, an unencrypted PEM key, and the key is the certificate's."""
    cert_data = _read(cert_file, "TLS certificate", "--tls-cert")
    key_data = _read(key_file, "TLS key", "--tls-key")
    try:
        certificate = x509.load_pem_x509_certificate(cert_data)
    except ValueError as exc:
        raise ConfigError(
            f"the TLS certificate {cert_file} is not a PEM certificate; pass --tls-cert with one."
        ) from exc
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the TLS key {key_file} is not an unencrypted PEM private key; pass --tls-key with one."
        ) from exc
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*public) != key.public_key().public_bytes(*public):
        raise ConfigError(
            f"the TLS key {key_file} does not belong to the certificate {cert_file}; "
            "pass the key the certificate was issued for."
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the TLS certificate {cert_file} and key {key_file} cannot be used together ({exc.reason}); "
            "pass a certificate and its key in PEM."
        ) from exc


def refusal_reason(exc: BaseException) -> str | None:
    """The sentence for a failed TLS handshake found in `exc`'s causes, or None when it was not TLS."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            detail = seen.verify_message or "not trusted"
            return (
                f"does not present a certificate this client trusts ({detail}); pass --ca-file "
                "(or set SHIPYARD_CA_FILE) with the CA that signed it"
            )
        if isinstance(seen, ssl.SSLError):
            return f"failed the TLS handshake ({seen.reason or seen}); is it serving https on this port"
        seen = seen.__cause__ or seen.__context__
    return None
