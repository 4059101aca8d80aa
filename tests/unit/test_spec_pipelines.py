"""The pipelines and repository keys of shipyard.yml."""

from __future__ import annotations

import pytest

from shipyard.domain.spec import parse_spec
from shipyard.errors import ConfigError

BASE = {"app": "web", "image": "registry:5000/web"}


def test_pipelines_map_branches_to_environments() -> None:
    spec = parse_spec(
        {
            **BASE,
            "repository": "file:///srv/git/web.git",
            "pipelines": [
                {"branch": "release", "environment": "production"},
                {"branch": "main", "environment": "staging"},
            ],
        }
    )
    assert spec.repository == "file:///srv/git/web.git"
    assert [(p.branch, p.environment) for p in spec.pipelines] == [
        ("release", "production"),
        ("main", "staging"),
    ]
    assert parse_spec(BASE).pipelines == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"pipelines": [{"branch": "main"}]}, "pipelines.0.environment: is required"),
        (
            {"pipelines": [{"branch": "a b", "environment": "x"}]},
            "pipelines.0.branch: must be a plain branch",
        ),
        ({"pipelines": [{"branch": "main", "environment": "pro duction"}]}, "pipelines.0.environment"),
        (
            {"pipelines": [{"branch": "main", "environment": "a"}, {"branch": "main", "environment": "b"}]},
            "branch 'main' is listed twice",
        ),
        ({"pipelines": [{"branch": "main", "environment": "a", "env": "b"}]}, "pipelines.0.env: unknown key"),
        (
            {"repository": "https://user:token@github.com/acme/web.git"},
            "repository: must not hold credentials",
        ),
    ],
)
def test_bad_pipelines_are_reported_with_their_key_path(document: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_spec({**BASE, **document})
    assert problem in raised.value.message
    assert "token" not in raised.value.message
