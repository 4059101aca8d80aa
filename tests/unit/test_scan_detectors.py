"""The scan's rules: key and token patterns and known values, found once, across chunk edges, masked."""

from __future__ import annotations

import io
import os

import pytest

from shipyard.imaging.detectors import PATTERN_RULES, known_value_rules, match_stream, scan_rules
from shipyard.secrets.masking import forget_registered_secrets, mask

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GHP = "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8"
GITHUB_PAT = "github_pat_" + "A" * 22 + "_" + "b" * 59
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def _forget_masks() -> None:
    forget_registered_secrets()


def kinds(data: bytes, known: dict[str, str] | None = None, chunk: int = 1 << 20) -> list[str]:
    return [m.rule.kind for m in match_stream(io.BytesIO(data), scan_rules(known or {}), chunk)]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (PEM, "private-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "private-key"),
        ("-----BEGIN EC PRIVATE KEY-----", "private-key"),
        ("-----BEGIN PRIVATE KEY-----", "private-key"),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----", "private-key"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "private-key"),
        (f"aws_access_key_id = {AWS_KEY}\n", "aws-access-key-id"),
        ('"key":"ASIAY34FZKBOKMUTVV7A"', "aws-access-key-id"),
        (f"GITHUB_TOKEN={GHP}", "github-token"),
        (f"token: {GITHUB_PAT}", "github-token"),
    ],
)
def test_each_pattern_is_found(text: str, kind: str) -> None:
    assert kinds(b"prefix\n" + text.encode() + b"\nsuffix") == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----",
        "XAKIAIOSFODNN7EXAMPLE",  # inside a longer word
        "AKIAIOSFODNN7EXAMPLEX",
        "AKIA1234",
        "ghp_short",
        "github_pat_tooshort",
        "the weight of light through high ghosts",
    ],
)
def test_lookalikes_are_not_found(text: str) -> None:
    assert kinds(text.encode()) == []


def test_random_binary_data_has_no_findings() -> None:
    assert kinds(os.urandom(4 << 20)) == []


@pytest.mark.parametrize("split", [1, 4, 10, 19])
def test_a_match_across_a_chunk_edge_is_found_once(split: int) -> None:
    chunk = 64
    data = b"x" * (chunk - split - 1) + b" " + AWS_KEY.encode() + b" " + b"y" * 300

    assert kinds(data, chunk=chunk) == ["aws-access-key-id"]


def test_each_rule_reports_once_per_file() -> None:
    data = (AWS_KEY + "\n").encode() * 1000 + PEM.encode() * 3

    assert sorted(kinds(data, chunk=4096)) == ["aws-access-key-id", "private-key"]


def test_known_values_are_found_and_labelled_by_name_only() -> None:
    data = b"DATABASE_URL=postgres://app:hunter2@db/app\n"

    matches = match_stream(io.BytesIO(data), scan_rules({"DATABASE_URL": "postgres://app:hunter2@db/app"}))

    assert [(m.rule.kind, m.rule.label, m.preview) for m in matches] == [
        ("known-secret", "value of secret DATABASE_URL", "")
    ]


def test_a_known_value_longer_than_a_chunk_is_found() -> None:
    value = "v" * 5000 + "END"
    data = b"a" * 1000 + value.encode() + b"b" * 1000

    assert kinds(data, {"BIG": value}, chunk=1024) == ["known-secret"]


def test_short_values_and_duplicates_make_no_rules() -> None:
    rules = known_value_rules(
        {"PORT": "8080", "FLAG": "yes", "A": "same-value", "B": "same-value", "C": "  padded-v  "}
    )

    assert [rule.label for rule in rules] == ["value of secret A", "value of secret C"]


def test_previews_mask_the_value_and_register_it_for_masking() -> None:
    matches = match_stream(io.BytesIO(f"{AWS_KEY} {GHP} {PEM}".encode()), PATTERN_RULES)

    previews = {m.rule.kind: m.preview for m in matches}
    assert previews == {
        "private-key": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "aws-access-key-id": "AKIA***",
        "github-token": "ghp_***",
    }
    assert mask(f"leaked {AWS_KEY} and {GHP}") == "leaked *** and ***"
