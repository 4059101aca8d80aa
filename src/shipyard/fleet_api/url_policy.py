"""Which controller URLs the agent and the CLI may talk to: https anywhere, plain http only to loopback.

Pure: decides from the URL's text alone (no name resolution, no connection), so a token is never sent
in clear over a network because of a typo in a URL.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from shipyard.errors import ConfigError

LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; a name is never resolved."""
    name = host.strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_controller_url(url: str, *, insecure_http: bool = False) -> str:
    """The URL without a trailing slash, or ConfigError saying why it may not be used."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number from 0 to 65535)
    except ValueError as exc:
        raise ConfigError("the controller URL is malformed; use https://HOST:PORT.") from exc
    # The URL itself is never echoed: a mistyped one may hold a password.
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError("the controller URL must look like https://HOST:PORT (or http:// to loopback).")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "the controller URL must not carry credentials; pass the token in SHIPYARD_TOKEN instead."
        )
    if parts.scheme == "http" and not insecure_http and not is_loopback(host):
        raise ConfigError(
            f"refusing plain http:// to the controller at {host}, which is not a loopback address; "
            "use https:// (with --ca-file for a private CA) or pass --insecure-http to send tokens in clear."
        )
    return url.strip().rstrip("/")
