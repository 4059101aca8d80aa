"""What a scan looks for: private keys, AWS and GitHub tokens, and the values of known secrets.

Each rule is one regular expression over bytes that starts with a literal (``-----BEGIN ``,
``A``, ``gh``, ``github_pat_``, or the whole known value), so ``re`` skips through data at memory speed and
only looks closer where that literal occurs. Contents are fed in chunks; the tail of each chunk
is kept so a match that straddles two chunks is still found, and found once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from shipyard.secrets.masking import MASK, register_secret

CHUNK_BYTES = 1 << 20
# Shorter values ("true", "8080") occur by chance all over a filesystem.
MIN_KNOWN_VALUE_LENGTH = 6
MAX_KNOWN_VALUE_LENGTH = 64 * 1024
ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class Rule:
    kind: str
    label: str
    pattern: re.Pattern[bytes] | None  # None: look for ``literal`` (bytes.find outruns re on literals)
    max_length: int
    visible_prefix: int = 0  # bytes of a match safe to show (a token's fixed prefix); the rest is masked
    show_whole: bool = False  # the match is a marker, not a secret (a PEM header)
    standalone: bool = False  # the match must not sit inside a longer run of letters and digits
    literal: bytes = b""


PATTERN_RULES: tuple[Rule, ...] = (
    Rule(
        "private-key",
        "private key",
        re.compile(rb"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"),
        max_length=96,
        show_whole=True,
    ),
    Rule(
        "aws-access-key-id",
        "AWS access key id",
        re.compile(rb"A[KS]IA[0-9A-Z]{16}"),
        max_length=20,
        visible_prefix=4,
        standalone=True,
    ),
    Rule(
        "github-token",
        "GitHub token",
        re.compile(rb"gh[pousr]_[A-Za-z0-9]{36}"),
        max_length=40,
        visible_prefix=4,
        standalone=True,
    ),
    Rule(
        "github-token",
        "GitHub fine-grained token",
        re.compile(rb"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
        max_length=93,
        visible_prefix=11,
        standalone=True,
    ),
)


def known_value_rules(values: Mapping[str, str]) -> tuple[Rule, ...]:
    """One rule per secret value worth looking for, labelled with its name and never its value."""
    rules: dict[bytes, Rule] = {}
    for name, value in sorted(values.items()):
        data = value.strip().encode()
        if MIN_KNOWN_VALUE_LENGTH <= len(data) <= MAX_KNOWN_VALUE_LENGTH and data not in rules:
            rules[data] = Rule("known-secret", f"value of secret {name}", None, len(data), literal=data)
    return tuple(rules.values())


def scan_rules(known_values: Mapping[str, str]) -> tuple[Rule, ...]:
    return PATTERN_RULES + known_value_rules(known_values)


@dataclass(frozen=True)
class Match:
    rule: Rule
    preview: str  # safe to print: the matched value masked


def preview(rule: Rule, matched: bytes) -> str:
    text = matched.decode(errors="replace")
    if rule.show_whole:
        return text
    register_secret(text)
    if rule.pattern is None:
        return ""  # a known secret is named by its label; no part of it is shown
    return text[: rule.visible_prefix] + MASK


def _first_match(rule: Rule, window: bytes, new_from: int) -> bytes | None:
    """The first match of ``rule`` in ``window`` that was not wholly in the previous chunk's tail."""
    if rule.pattern is None:
        at = window.find(rule.literal, max(0, new_from - len(rule.literal) + 1))
        return rule.literal if at >= 0 else None
    for found in rule.pattern.finditer(window):
        if found.end() <= new_from:
            continue
        if rule.standalone and (
            (found.start() > 0 and window[found.start() - 1] in ALNUM)
            or (found.end() < len(window) and window[found.end()] in ALNUM)
        ):
            continue
        return found.group()
    return None


def match_stream(stream: IO[bytes], rules: tuple[Rule, ...], chunk_bytes: int = CHUNK_BYTES) -> list[Match]:
    """The first match of each rule in the stream's contents."""
    overlap = max((rule.max_length for rule in rules), default=1)
    found: dict[int, Match] = {}
    carry = b""
    while chunk := stream.read(chunk_bytes):
        window = carry + chunk if carry else chunk
        for number, rule in enumerate(rules):
            if number in found:
                continue
            hit = _first_match(rule, window, len(carry))
            if hit is not None:
                found[number] = Match(rule, preview(rule, hit))
        carry = window[-overlap:]
    return [found[number] for number in sorted(found)]
