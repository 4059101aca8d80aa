"""Redaction of stored text (job logs): secret values in every form a log line may show them.

masking.mask covers the raw values this process registered; a stored log also meets them encoded
(base64 in an auth header, percent-encoding in a URL) and credentials written into URLs, so those
are removed here before anything is stored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from shipyard.secrets.masking import MASK, MIN_MASKED_LENGTH, registered_values

# scheme://user:password@host -> scheme://***@host (any scheme: git, https and registries alike)
URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@:]+:[^/\s@]*@")


def encoded_forms(value: str) -> set[str]:
    """`value` raw, base64 (standard and URL-safe, with and without padding) and percent-encoded."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value)}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.update({encoded, encoded.rstrip("=")})
    return {form for form in forms if len(form) >= MIN_MASKED_LENGTH}


class Redactor:
    """Replaces URL credentials and secret values: the given ones and every registered one, in all forms."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._extra = frozenset(value.strip() for value in values if len(value.strip()) >= MIN_MASKED_LENGTH)
        self._known: frozenset[str] | None = None
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Redact `value` (and each of its lines: a key file) from now on."""
        lines = {line.strip() for line in [value, *value.splitlines()]}
        self._extra |= {line for line in lines if len(line) >= MIN_MASKED_LENGTH}

    def _current_pattern(self) -> re.Pattern[str] | None:
        known = registered_values() | self._extra
        if known != self._known:  # a step registered new values (a store opened): rebuild once
            forms = set().union(*(encoded_forms(value) for value in known)) if known else set()
            alternatives = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
            self._known = known
        return self._pattern

    def __call__(self, text: str) -> str:
        text = URL_CREDENTIALS.sub(lambda match: match.group("scheme") + MASK + "@", text)
        pattern = self._current_pattern()
        return pattern.sub(MASK, text) if pattern is not None else text
