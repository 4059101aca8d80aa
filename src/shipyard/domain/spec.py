"""The shipyard.yml schema: validated section by section, every error with its key path.

Unknown keys are errors, except keys starting with ``x-`` (YAML anchors and user notes).
Loading a file is a separate function (load_spec) from the schema, so the schema stays pure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.errors import ConfigError

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65534)]


class Section(BaseModel):
    """A config section: unknown keys rejected, ``x-`` keys allowed and dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data


class RegistrySpec(Section):
    server: str | None = None
    username_env: str | None = None
    username_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    insecure: bool = Field(default=False, description="use plain HTTP (loopback registries)")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("username", "password"):
                if key in data:
                    raise ValueError(
                        f"inline '{key}' is not allowed; "
                        f"use {key}_env or {key}_file so it stays out of the file"
                    )
        return data


# Methods a request of which may be sent again after it reached a server: safe ones always, PUT and
# DELETE only when the app lists them (idempotent by HTTP's rules, but not every app honours that).
REPLAYABLE_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
SIZE = re.compile(r"^(\d+)([kmg]?)$")
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class RetriesSpec(Section):
    """When haproxy may send a failed request again (to the other slot during a swap)."""

    attempts: Annotated[int, Field(ge=0, le=10)] = Field(
        default=3, description="retries after the first attempt; 0 never retries"
    )
    methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "OPTIONS"],
        description="methods replayed after a server closed without answering; others: connection failures",
    )
    response_timeout: bool = Field(
        default=False, description="also replay those methods after a server timeout"
    )

    @field_validator("methods")
    @classmethod
    def _idempotent_methods(cls, value: list[str]) -> list[str]:
        methods = [method.upper() for method in value]
        for method in methods:
            if method not in REPLAYABLE_METHODS:
                raise ValueError(
                    f"{method} cannot be replayed: a server may already have handled it, so a replay could "
                    f"apply it twice; list only {', '.join(REPLAYABLE_METHODS)}"
                )
        return list(dict.fromkeys(methods))


class TimeoutsSpec(Section):
    http_request: PositiveFloat = Field(
        default=10.0, description="seconds a client has to send its request head"
    )


class ProxySpec(Section):
    listen: str = "127.0.0.1:8080"
    maintenance_page: str | None = Field(default=None, description="path to an HTML file served with 503")
    retries: RetriesSpec = Field(default_factory=RetriesSpec)
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec)
    max_body: str | None = Field(default=None, description="largest request body accepted, like 100m")

    @field_validator("max_body", mode="before")
    @classmethod
    def _body_size(cls, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).strip().lower()
        match = SIZE.match(text)
        if match is None or int(match.group(1)) == 0:
            raise ValueError("must be a size like 512k, 100m or 1g")
        return text

    @property
    def max_body_bytes(self) -> int | None:
        if self.max_body is None:
            return None
        match = SIZE.match(self.max_body)
        assert match is not None  # validated above
        return int(match.group(1)) * SIZE_UNITS[match.group(2)]

    @field_validator("listen")
    @classmethod
    def _address_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("must be address:port, for example 127.0.0.1:8080")
        return value


class HealthcheckSpec(Section):
    path: str = "/up"
    interval: PositiveFloat = 0.2
    timeout: PositiveFloat = 2.0
    healthy_threshold: Annotated[int, Field(ge=1)] = 2
    deadline: PositiveFloat = 30.0

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class EnvSpec(Section):
    clear: dict[str, str] = Field(default_factory=dict)
    secret: list[str] = Field(default_factory=list, description="names read from the secret store or env")

    @field_validator("clear", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("clear")
    @classmethod
    def _clear_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return value


class DeploySpec(Section):
    drain_timeout: Annotated[float, Field(ge=0)] = 10.0
    stop_timeout: Annotated[int, Field(ge=0)] = 10
    keep_releases: Annotated[int, Field(ge=1)] = 3
    standby: Annotated[float, Field(ge=0)] = 0.0


class HooksSpec(Section):
    pre_deploy: list[str] = Field(default_factory=list, alias="pre-deploy")
    post_swap: list[str] = Field(default_factory=list, alias="post-swap")
    post_deploy: list[str] = Field(default_factory=list, alias="post-deploy")

    @field_validator("pre_deploy", "post_swap", "post_deploy", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ResourcesSpec(Section):
    memory: str | None = None
    cpus: PositiveFloat | None = None

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+[bkmg]?", value.lower()):
            raise ValueError("must be a size like 256m or 1g")
        return value


class BuildSecretSpec(Section):
    id: str
    env: str | None = None
    file: str | None = None
    secret: str | None = Field(default=None, description="name in the encrypted secret store")

    @model_validator(mode="after")
    def _one_source(self) -> BuildSecretSpec:
        if sum(x is not None for x in (self.env, self.file, self.secret)) != 1:
            raise ValueError("give exactly one of env, file or secret")
        return self


class BuildSpec(Section):
    context: str = "."
    dockerfile: str = "Dockerfile"
    target: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    secrets: list[BuildSecretSpec] = Field(default_factory=list)
    cache: bool = True
    docker: str | None = Field(default=None, description="docker CLI with BuildKit, e.g. /usr/bin/docker")
    scan: bool = True


class SecretsSpec(Section):
    provider: Literal["local", "aws-kms"] = "local"
    key_file: str | None = None
    kms_key_id: str | None = None
    kms_endpoint: str | None = None
    region: str = "us-east-1"


class RolloutSpec(Section):
    max_parallel: str = "1"
    max_failed: Annotated[int, Field(ge=0)] = 0
    monitor: Annotated[float, Field(ge=0)] = 5.0
    auto_rollback: bool = True

    @field_validator("max_parallel", mode="before")
    @classmethod
    def _count_or_percent(cls, value: Any) -> Any:
        text = str(value)
        if not re.fullmatch(r"[1-9]\d*%?", text) or (text.endswith("%") and int(text[:-1]) > 100):
            raise ValueError("must be a count like 2 or a percentage like 50%")
        return text


class AppSpec(Section):
    app: str
    image: str
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    port: Port = 3000
    network: Literal["host", "bridge"] = "host"
    bind: str = Field(default="127.0.0.1", description="host address the app listens on")
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    healthcheck: HealthcheckSpec = Field(default_factory=HealthcheckSpec)
    env: EnvSpec = Field(default_factory=EnvSpec)
    deploy: DeploySpec = Field(default_factory=DeploySpec)
    hooks: HooksSpec = Field(default_factory=HooksSpec)
    volumes: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    command: list[str] | None = None
    build: BuildSpec = Field(default_factory=BuildSpec)
    secrets: SecretsSpec = Field(default_factory=SecretsSpec)
    controller: str | None = None
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)

    @field_validator("app")
    @classmethod
    def _app_name(cls, value: str) -> str:
        if not APP_NAME.match(value):
            raise ValueError("must be lowercase letters, digits and dashes, starting with a letter")
        return value

    @field_validator("image")
    @classmethod
    def _image_repository(cls, value: str) -> str:
        if ":" in value.rsplit("/", 1)[-1] or "@" in value:
            raise ValueError("must be a repository without tag or digest, for example registry:5000/web")
        return value

    @field_validator("volumes")
    @classmethod
    def _volume_syntax(cls, value: list[str]) -> list[str]:
        for volume in value:
            if ":" not in volume:
                raise ValueError(f"{volume!r} must be source:target[:ro]")
        return value

    @property
    def slot_ports(self) -> dict[str, int]:
        """Host port of each slot: blue on `port`, green on the next one."""
        return {"blue": self.port, "green": self.port + 1}

    @property
    def listen_port(self) -> int:
        return int(self.proxy.listen.rpartition(":")[2])

    @property
    def listen_host(self) -> str:
        return self.proxy.listen.rpartition(":")[0]


def _key_path(location: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in location if p not in ("function-after", "function-before")]
    return ".".join(parts) or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (remove it, or prefix it with x- to keep it as a note)"
    if kind == "missing":
        return "is required"
    text = str(error["msg"])
    for prefix in ("Value error, ", "Input should be "):
        if text.startswith(prefix):
            text = ("must be " if prefix.startswith("Input") else "") + text[len(prefix) :]
    return text


def validation_messages(exc: ValidationError) -> list[str]:
    return [f"{_key_path(tuple(e['loc']))}: {_message(dict(e))}" for e in exc.errors()]


def parse_spec(data: Any, *, source: str = "shipyard.yml") -> AppSpec:
    """Validate already-parsed YAML; every problem is reported with its key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of keys like 'app:' and 'image:'.")
    try:
        return AppSpec.model_validate(data)
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise ConfigError(
            f"{source} is invalid ({len(messages)} problem{'s' if len(messages) > 1 else ''}): "
            + "; ".join(messages),
            details=messages,
        ) from exc


def load_spec(path: Path) -> AppSpec:
    if not path.is_file():
        raise ConfigError(f"{path} not found; run 'shipyard init' to write one, or pass --config PATH.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the syntax and try again.") from exc
    return parse_spec(data, source=str(path.name))


def spec_snapshot(spec: AppSpec) -> dict[str, Any]:
    """The spec as stored with a release: secret names only, never values."""
    return spec.model_dump(mode="json", by_alias=True)


def spec_from_snapshot(snapshot: dict[str, Any]) -> AppSpec:
    return parse_spec(snapshot, source="release snapshot")
