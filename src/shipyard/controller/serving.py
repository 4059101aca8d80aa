"""How `shipyard controller` asks uvicorn to serve: TLS files and the proxies trusted for X-Forwarded-For.

uvicorn on its own trusts X-Forwarded-For from 127.0.0.1, so anyone on the controller's machine could
write any source address into the audit log; here no proxy is trusted unless named.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError

# On SIGTERM, requests still running after this long are cancelled (a waiting long-poll: its agent polls
# again) and the process exits. It also bounds the TLS close of idle keep-alive connections, which
# otherwise waits up to 30 s for a client's close_notify that a pooled, unread connection never sends.
SHUTDOWN_GRACE_SECONDS = 3


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8700
    tls_cert: Path | None = None
    tls_key: Path | None = None
    forwarded_allow_ips: str = ""
    access_log: bool = False


def trusted_proxies(text: str) -> list[str]:
    """The comma-separated addresses or networks of --forwarded-allow-ips ('*' trusts every client)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item) if "/" in item else ipaddress.ip_address(item)
        except ValueError as exc:
            raise ConfigError(
                f"--forwarded-allow-ips: {item!r} is not an IP address or network (such as 10.0.0.0/8, "
                "with no host bits set); list the proxies in front of the controller, comma-separated."
            ) from exc
    return items


def uvicorn_options(options: ServeOptions) -> dict[str, Any]:
    """Keyword arguments for uvicorn.run, after checking the flags make sense together."""
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError("pass both --tls-cert and --tls-key to serve https, or neither for plain http.")
    proxies = trusted_proxies(options.forwarded_allow_ips)
    served: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "access_log": options.access_log,
        # Without a trusted proxy the headers are ignored altogether: the peer's address is the source.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    if options.tls_cert is not None and options.tls_key is not None:
        served["ssl_certfile"] = str(options.tls_cert)
        served["ssl_keyfile"] = str(options.tls_key)
    return served
