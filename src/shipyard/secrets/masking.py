"""A process-wide registry of secret values, and the masking of them in any text shipyard prints.

Every value the secret store decrypts or resolves is registered here, so whatever later prints
a command line, a container's environment or a build log can pass it through ``mask`` first.
``mask_credentials`` also masks what needs no registration: the controller's bearer tokens, known by
their shape, and the value of any authorization header.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "***"
# Shorter values ("on", "1", "yes") would mask ordinary words all over the output.
MIN_MASKED_LENGTH = 4

# The controller's tokens (shipyard.controller.store.tokens): an API (sya_), agent (syg_) or join (syj_)
# prefix and urlsafe base64. The prefix is kept, so a log still tells which kind of token was used.
TOKEN_PATTERN = re.compile(r"(?<![A-Za-z0-9])(sy[agj]_)[A-Za-z0-9_-]+")
# An authorization header however it is printed: "authorization: Bearer x", ('authorization', 'x'),
# b'authorization', b'Bearer x'; and a credential after its scheme anywhere else (16 characters at
# least there, so that prose such as "basic authentication" stays readable).
AUTHORIZATION_PATTERN = re.compile(
    r"""(?i)(authorization['"]?\s*[,:=]\s*(?-i:b)?['"]?)(?:(?:bearer|basic)\s+)?+[A-Za-z0-9._~+/=-]+"""
)
SCHEME_PATTERN = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{16,}")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms_of(value: str) -> set[str]:
    # Logs often show a multi-line value (a PEM key) escaped or re-wrapped, so each line is
    # masked on its own as well as the whole value.
    forms = {value, *value.splitlines()}
    return {form.strip() for form in forms if len(form.strip()) >= MIN_MASKED_LENGTH}


def register_secret(value: str) -> None:
    """Mask ``value`` from now on in everything passed through ``mask``."""
    global _pattern
    forms = _forms_of(value)
    if not forms:
        return
    with _lock:
        if forms <= _values:
            return
        _values.update(forms)
        # Longest first, so a value that contains another one is masked whole.
        alternatives = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def registered_values() -> frozenset[str]:
    """Every value registered so far (for redaction that also needs their encoded forms)."""
    with _lock:
        return frozenset(_values)


def forget_registered_secrets() -> None:
    """Empty the registry (for a long-lived process that switches apps, and for tests)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def mask(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def mask_credentials(text: str) -> str:
    """``text`` with registered secrets, token-shaped values and authorization header values masked."""
    text = mask(text)
    if not text:
        return text
    text = AUTHORIZATION_PATTERN.sub(lambda found: found.group(1) + MASK, text)
    text = SCHEME_PATTERN.sub(lambda found: found.group(1) + found.group(2) + MASK, text)
    return TOKEN_PATTERN.sub(lambda found: found.group(1) + MASK, text)


def _mask_any(value: Any) -> Any:
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, Mapping):
        return {key: _mask_any(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_mask_any(item) for item in value)
    return value


def mask_processor(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor masking every string of the event, nested ones included.

    Place it after ``format_exc_info`` and just before the renderer, so tracebacks and
    formatted values are masked too.
    """
    for key, value in event_dict.items():
        event_dict[key] = _mask_any(value)
    return event_dict
