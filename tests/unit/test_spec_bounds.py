"""shipyard.yml values reaching haproxy, docker or a file name are matched whole; numbers are bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.domain.spec import MAX_SECONDS, load_spec, parse_spec
from shipyard.errors import ConfigError

MINIMAL: dict[str, Any] = {"app": "web", "image": "127.0.0.1:5000/web"}


def problems(**overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_spec({**MINIMAL, **overrides})
    assert "\n" not in caught.value.message, "the error must stay one line"
    return caught.value.details


def only_problem(key: str, **overrides: Any) -> str:
    details = problems(**overrides)
    assert len(details) == 1, details
    assert details[0].startswith(f"{key}: "), details
    return details[0]


@pytest.mark.parametrize(
    ("key", "overrides"),
    [
        ("app", {"app": "nl\n"}),
        ("app", {"app": "web\nfrontend evil"}),
        ("proxy.listen", {"proxy": {"listen": "127.0.0.1\nfrontend evil\n    bind 0.0.0.0:8080"}}),
        ("proxy.listen", {"proxy": {"listen": "127.0.0.1:8080\n"}}),
        ("proxy.listen", {"proxy": {"listen": "127.0.0.1 :8080"}}),
        ("healthcheck.path", {"healthcheck": {"path": "/up\n"}}),
        (
            "healthcheck.path",
            {
                "healthcheck": {
                    "path": "/up }\n    http-request return file /var/lib/shipyard/agent-token if { path /t"
                }
            },
        ),
        ("healthcheck.path", {"healthcheck": {"path": "/up #comment"}}),
        ("healthcheck.path", {"healthcheck": {"path": "/up'"}}),
        ("bind", {"bind": "127.0.0.1\n"}),
        ("bind", {"bind": "127.0.0.1 x"}),
        ("image", {"image": "127.0.0.1:5000/web\n"}),
        ("image", {"image": "127.0.0.1:5000/Web"}),
        ("registry.server", {"registry": {"server": "r:5000\n"}}),
        ("registry.password_env", {"registry": {"password_env": "PASS\n"}}),
        ("registry.password_file", {"registry": {"password_file": "/run/pass\n"}}),
        ("proxy.maintenance_page", {"proxy": {"maintenance_page": "page.html\n"}}),
        ("env.clear", {"env": {"clear": {"FOO\n": "x"}}}),
        ("env.secret", {"env": {"secret": ["FOO\n"]}}),
        ("env.clear.FOO", {"env": {"clear": {"FOO": "a\0b"}}}),
        ("volumes", {"volumes": ["/srv/data:/data\n"]}),
        ("volumes", {"volumes": ["/srv/data:/data:ro,bind-propagation=x"]}),
        ("volumes", {"volumes": ["/srv:data"]}),
        ("labels.'a\\n'.[key]", {"labels": {"a\n": "b"}}),
        ("labels.a", {"labels": {"a": "b\nc"}}),
        ("resources.memory", {"resources": {"memory": "256m\n"}}),
        (
            "resources.memory",
            {"resources": {"memory": "\u0662\u0665\u0666m"}},
        ),  # digits \d matches, docker does not
        ("command.0", {"command": ["a\0b"]}),
        ("hooks.pre-deploy.0", {"hooks": {"pre-deploy": "echo \0"}}),
        ("build.target", {"build": {"target": "prod\n"}}),
        ("build.args.'A\\n'.[key]", {"build": {"args": {"A\n": "1"}}}),
        ("build.secrets.0.id", {"build": {"secrets": [{"id": "npm,src=/etc/shadow", "env": "NPM"}]}}),
        ("build.secrets.0.env", {"build": {"secrets": [{"id": "npm", "env": "NPM\n"}]}}),
        ("build.dockerfile", {"build": {"dockerfile": "Dockerfile\n"}}),
        ("secrets.key_file", {"secrets": {"key_file": "key\n"}}),
        ("secrets.region", {"secrets": {"region": "us-east-1\n"}}),
        ("secrets.kms_key_id", {"secrets": {"kms_key_id": "alias/k\n"}}),
        ("secrets.kms_endpoint", {"secrets": {"kms_endpoint": "http://127.0.0.1:4566\n"}}),
        ("controller", {"controller": "http://127.0.0.1:9000\n"}),
        ("rollout.max_parallel", {"rollout": {"max_parallel": "2\n"}}),
        ("rollout.max_parallel", {"rollout": {"max_parallel": "²"}}),
    ],
)
def test_a_value_with_a_newline_or_out_of_shape_is_refused_with_its_key_path(
    key: str, overrides: dict[str, Any]
) -> None:
    only_problem(key, **overrides)


def test_a_trailing_newline_in_the_app_name_is_refused_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "shipyard.yml"
    path.write_text('app: "nl\\n"\nimage: 127.0.0.1:5000/web\n')
    with pytest.raises(ConfigError, match="app: must be 1 to 40 lowercase letters"):
        load_spec(path)


NUMBERS = [
    ("healthcheck.interval", {"healthcheck": {"interval": "X"}}),
    ("healthcheck.timeout", {"healthcheck": {"timeout": "X"}}),
    ("healthcheck.deadline", {"healthcheck": {"deadline": "X"}}),
    ("deploy.drain_timeout", {"deploy": {"drain_timeout": "X"}}),
    ("deploy.standby", {"deploy": {"standby": "X"}}),
    ("rollout.monitor", {"rollout": {"monitor": "X"}}),
    ("resources.cpus", {"resources": {"cpus": "X"}}),
]


def _with(overrides: dict[str, Any], value: Any) -> dict[str, Any]:
    return {
        section: {key: value if placeholder == "X" else placeholder for key, placeholder in keys.items()}
        for section, keys in overrides.items()
    }


@pytest.mark.parametrize(("key", "overrides"), NUMBERS)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300])
def test_infinite_not_a_number_and_huge_floats_are_refused(
    key: str, overrides: dict[str, Any], value: float
) -> None:
    only_problem(key, **_with(overrides, value))


@pytest.mark.parametrize("text", [".inf", ".nan", "-.inf", "1e300", "1.0e+300"])
def test_yaml_infinity_and_huge_monitor_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "shipyard.yml"
    path.write_text(f"app: web\nimage: 127.0.0.1:5000/web\nrollout:\n  monitor: {text}\n")
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert [d.split(":")[0] for d in caught.value.details] == ["rollout.monitor"]


@pytest.mark.parametrize(
    ("key", "overrides"),
    [
        ("deploy.stop_timeout", {"deploy": {"stop_timeout": 1e300}}),
        ("deploy.stop_timeout", {"deploy": {"stop_timeout": MAX_SECONDS + 1}}),
        ("deploy.keep_releases", {"deploy": {"keep_releases": 10**12}}),
        ("healthcheck.healthy_threshold", {"healthcheck": {"healthy_threshold": 10**6}}),
        ("rollout.max_failed", {"rollout": {"max_failed": 10**9}}),
        ("rollout.max_parallel", {"rollout": {"max_parallel": 10**30}}),
        ("rollout.monitor", {"rollout": {"monitor": MAX_SECONDS + 0.5}}),
        ("deploy.standby", {"deploy": {"standby": MAX_SECONDS * 2}}),
        ("port", {"port": 65535}),
        ("resources.cpus", {"resources": {"cpus": 4096}}),
        ("resources.memory", {"resources": {"memory": "9" * 30 + "g"}}),
    ],
)
def test_numbers_above_their_maximum_are_refused(key: str, overrides: dict[str, Any]) -> None:
    only_problem(key, **overrides)


def test_values_at_the_limits_and_usual_shapes_stay_valid() -> None:
    spec = parse_spec(
        {
            **MINIMAL,
            "bind": "0.0.0.0",
            "proxy": {"listen": "*:8080", "maintenance_page": "public/503 page.html"},
            "healthcheck": {"path": "/health/live?full=1&x=%20", "deadline": MAX_SECONDS},
            "deploy": {"standby": MAX_SECONDS, "stop_timeout": MAX_SECONDS, "drain_timeout": 0},
            "rollout": {"monitor": MAX_SECONDS, "max_parallel": "100%", "max_failed": 3},
            "volumes": ["/srv/data:/data", "cache:/var/cache:ro", "/a b:/c:rw,z"],
            "labels": {"com.example/team": "web team"},
            "env": {"clear": {"PEM": "-----BEGIN-----\nabc\n-----END-----", "N": 3, "EMPTY": None}},
            "command": ["sh", "-c", "echo one\necho two"],
            "hooks": {"pre-deploy": "sh -c 'migrate --all'"},
            "resources": {"memory": "512M", "cpus": 1.5},
            "registry": {"server": "registry.example.com:5000", "password_env": "REGISTRY_PASSWORD"},
            "controller": "https://controller.example.com:8443",
            "build": {
                "target": "prod",
                "args": {"NODE_ENV": "production"},
                "secrets": [{"id": "npm", "env": "NPM"}],
            },
            "secrets": {
                "provider": "aws-kms",
                "kms_key_id": "arn:aws:kms:us-east-1:111122223333:key/1234abcd",
            },
        }
    )
    assert spec.rollout.monitor == MAX_SECONDS
    assert spec.env.clear["N"] == "3"
    for listen in ("127.0.0.1:8080", "localhost:80", ":::8080", "::1:8080", "0.0.0.0:443"):
        assert parse_spec({**MINIMAL, "proxy": {"listen": listen}}).proxy.listen == listen
    for image in ("web", "registry:5000/web", "r:5000/team/web-app_x.y", "localhost:5000/a__b"):
        assert parse_spec({**MINIMAL, "image": image}).image == image
