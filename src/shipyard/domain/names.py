"""The shapes of names and values that reach haproxy's config, a docker argument or a file name.

Every pattern is applied with ``fullmatch``: ``re.match`` with ``$`` lets a trailing newline through
(``$`` also matches before a final ``\\n``), which is how a name could smuggle a new line into a
config file. Pure: no I/O.
"""

from __future__ import annotations

import re

APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# An environment (host group) or app as the controller names it.
FLEET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# An environment of the encrypted secret store: also the file name .shipyard/secrets/<env>.enc.
SECRETS_ENV = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
# An id as people type it: ASCII digits only (str.isdigit() also takes '²', which int() refuses),
# few enough to fit a signed 64-bit integer; a release may be written r12.
DECIMAL_ID = re.compile(r"[0-9]{1,18}")
RELEASE_REF = re.compile(rf"r?{DECIMAL_ID.pattern}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
HOST_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
HOST = re.compile(HOST_NAME)
HOST_PORT = re.compile(rf"{HOST_NAME}(?::[0-9]{{1,5}})?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
# A registry host may be an IPv6 literal in brackets, as Docker's reference grammar allows.
_REGISTRY_HOST = rf"(?:{HOST_NAME}|\[[0-9A-Fa-f:.]{{2,45}}\])"
IMAGE_REPOSITORY = re.compile(
    rf"(?:{_REGISTRY_HOST}(?::[0-9]{{1,5}})?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
)
# haproxy's bind address: `*`, a host name or IPv4 address, or an IPv6 literal (its last colon ends it).
LISTEN_HOST = re.compile(rf"\*|{HOST_NAME}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
# RFC 3986 path and query characters, less the quotes and `#` haproxy's config parser gives a meaning.
URL_PATH = re.compile(r"/[A-Za-z0-9._~!$&()*+,;=:@%/-]{0,1023}(?:\?[A-Za-z0-9._~!$&()*+,;=:@%/?-]{0,1023})?")
# A git remote: scp-like ssh (git@host:path), ssh://, https:// or file:// URL, never with whitespace.
GIT_URL = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,2048}")
URL = re.compile(r"https?://[^\s\x00-\x1f\x7f-\x9f]{1,2040}")
VOLUME = re.compile(
    r"(?P<source>/[^:,\x00-\x1f\x7f]*|[A-Za-z0-9][A-Za-z0-9_.-]{0,254})"
    r":(?P<target>/[^:,\x00-\x1f\x7f]*)"
    r"(?::(?P<options>(?:ro|rw|z|Z|nocopy|r?shared|r?slave|r?private|consistent|cached|delegated)"
    r"(?:,(?:ro|rw|z|Z|nocopy|r?shared|r?slave|r?private|consistent|cached|delegated))*))?"
)
# A process of an app (web, worker, ...): part of a container name.
SQL_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
PROCESS_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
# A signal as docker's --stop-signal takes it, without the SIG prefix: TERM, TSTP, USR1, RTMIN+3.
SIGNAL_NAME = re.compile(r"[A-Z][A-Z0-9]{1,9}(?:\+[0-9]{1,2})?")
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")
BUILD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
KMS_KEY_ID = re.compile(r"[A-Za-z0-9:/_.+=@-]{1,2048}")
REGION = re.compile(r"[a-z0-9-]{1,32}")
MEMORY = re.compile(r"[0-9]{1,20}[bkmgBKMG]?")
# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_name(pattern: re.Pattern[str], value: object) -> bool:
    """Whether `value` is a string matching `pattern` whole (no trailing newline, nothing around)."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None
