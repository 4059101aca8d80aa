"""Registry access, the one place build, host deploys and the fleet CLI reach a registry through.

- the login: `registry_credentials` (registry.username_env/password_env from the env's secret store,
  then the environment; or username_file/password_file, where `registry_file_path` says: one rule for
  the build, the host and the host's policy);
- the scheme: `registry_is_insecure` (plain http only to a loopback registry or with
  `registry.insecure: true`), `RegistryClient` speaks https unless told otherwise;
- tag -> digest: `resolve_digest` over the distribution (v2) HTTP API, basic or token auth.

httpx errors and registry status codes become RegistryError / NotFoundError here, once.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.domain.models import ImageRef
from shipyard.domain.names import DIGEST, REPOSITORY_PATH, TAG, is_name
from shipyard.errors import ConfigError, NotFoundError, RegistryError, SecretError, ShipyardError
from shipyard.fleet_api.url_policy import is_loopback

if TYPE_CHECKING:
    # httpx is imported where a client is made: a host command that never asks a registry
    # (rollback, status) does not pay for loading it.
    import httpx

    from shipyard.domain.spec import RegistrySpec
    from shipyard.secrets.store import SecretStore

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def parse_image(reference: str) -> ImageRef:
    """Split `host:port/repo:tag` or `repo@sha256:...` the way docker does."""
    text = reference.strip()
    if not text or any(c.isspace() for c in text):
        raise ConfigError(
            f"'{reference}' is not an image reference; use repository:tag or repository@sha256:..."
        )
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not is_name(DIGEST, digest):
            raise ConfigError(
                f"'{digest}' is not a sha256 digest; it must be sha256: followed by 64 hex digits."
            )
    first, _, rest = text.partition("/")
    registry = first if rest and ("." in first or ":" in first or first == "localhost") else None
    path = rest if registry else text
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not is_name(TAG, tag):
            raise ConfigError(f"'{tag}' is not a valid tag in '{reference}'.")
    if not is_name(REPOSITORY_PATH, path):
        raise ConfigError(f"'{path}' is not a valid repository name (lowercase letters, digits, . _ - /).")
    return ImageRef(registry=registry, repository=path, tag=tag if tag or digest else "latest", digest=digest)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def docker_auth(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def registry_file_path(name: str, config_dir: Path | None) -> Path | None:
    """Where registry.username_file/password_file `name` points: `~` expanded, a relative path taken
    from `config_dir`, the directory holding shipyard.yml, whatever the working directory. None for a
    relative path without a shipyard.yml (a release from the controller on an agent)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    return None if config_dir is None else config_dir.absolute() / path


def registry_credentials(
    spec: RegistrySpec,
    store: SecretStore | None,
    config_dir: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    required: bool = False,
) -> Credentials | None:
    """Credentials from registry.username_env/password_env (the secret store first, when there is
    one, then the environment) or username_file/password_file (see `registry_file_path`; `config_dir`
    is the directory of shipyard.yml). None when none are configured, or when they are not all set and
    not ``required`` (a local build without --push needs no login). The password is registered
    for masking at once."""
    environ = os.environ if environ is None else environ
    names = [name for name in (spec.username_env, spec.password_env) if name]
    stored = store.items() if store is not None and names and store.exists() else {}
    username = _credential(spec.username_env, spec.username_file, stored, environ, config_dir)
    password = _credential(spec.password_env, spec.password_file, stored, environ, config_dir)
    if username is not None and password is not None:
        from shipyard.secrets.masking import register_secret

        register_secret(password)
        return Credentials(username, password)
    if not required or not any(
        (spec.username_env, spec.username_file, spec.password_env, spec.password_file)
    ):
        return None
    raise _missing_login(spec, username, password, store.env if store is not None else "ENV")


def _missing_login(spec: RegistrySpec, username: str | None, password: str | None, env: str) -> ShipyardError:
    missing = [
        name
        for name, value in ((spec.username_env, username), (spec.password_env, password))
        if name and not value
    ]
    if not missing:
        return ConfigError("registry: set both a username (_env or _file) and a password (_env or _file).")
    them, are = ("them", "are") if len(missing) > 1 else ("it", "is")
    return SecretError(
        f"pushing needs a registry login, but {' and '.join(missing)} {are} not set; "
        f"export {them} or add {them} with 'shipyard secrets set NAME --env {env}'.",
        details=missing,
    )


def _credential(
    env_name: str | None,
    file_name: str | None,
    stored: Mapping[str, str],
    environ: Mapping[str, str],
    config_dir: Path | None,
) -> str | None:
    if env_name:
        return stored.get(env_name, environ.get(env_name)) or None
    if file_name:
        path = registry_file_path(file_name, config_dir)
        if path is None:
            raise ConfigError(
                f"the registry credential file {file_name!r} is a relative path, but there is no "
                "shipyard.yml here to resolve it from (a release from the controller); give an absolute path."
            )
        try:
            return path.read_text().strip() or None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the registry credential file {path} ({type(exc).__name__})."
            ) from exc
    return None


def registry_is_insecure(spec: RegistrySpec, server: str) -> bool:
    """Plain http only to a loopback registry (127.0.0.0/8, ::1, localhost) or when
    `registry.insecure: true` says so; https everywhere else. A name is never resolved, so
    `127.example.com` is not loopback."""
    host = server.rsplit(":", 1)[0] if not server.endswith("]") else server
    return spec.insecure or is_loopback(host)


def resolve_digest(spec: RegistrySpec, ref: ImageRef, credentials: Credentials | None) -> str:
    """The digest REF points to now, asked of its registry (or registry.server)."""
    server = ref.registry or spec.server
    if not server:
        raise ConfigError(
            f"{ref} names no registry; use registry-host:port/{ref.repository} or set registry.server."
        )
    client = RegistryClient(server, credentials, insecure=registry_is_insecure(spec, server))
    try:
        return client.resolve(ref)
    finally:
        client.close()


class RegistryClient:
    def __init__(self, server: str, credentials: Credentials | None, *, insecure: bool = False) -> None:
        scheme = "http" if insecure else "https"
        self.server = server
        self.base = f"{scheme}://{server}"
        self.credentials = credentials
        import httpx

        self.http = httpx.Client(timeout=10.0)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def resolve(self, ref: ImageRef) -> str:
        """The digest a tag points to now (or the digest given, checked to exist)."""
        target = ref.digest or ref.tag or "latest"
        response = self._request("HEAD", f"/v2/{ref.repository}/manifests/{target}", ref)
        if response.status_code == 404:
            raise NotFoundError(
                f"{ref.name}:{target} was not found in the registry {self.server}; "
                "check the tag, or push it first."
            )
        self._raise_for_status(response, ref)
        digest = str(response.headers.get("Docker-Content-Digest", ""))
        if not is_name(DIGEST, digest):
            raise RegistryError(
                f"the registry {self.server} did not return a digest for {ref.name}:{target}."
            )
        if ref.digest and digest != ref.digest:
            raise RegistryError(
                f"digest mismatch for {ref.name}: asked for {ref.digest}, registry has {digest}."
            )
        return digest

    def _request(self, method: str, path: str, ref: ImageRef) -> httpx.Response:
        import httpx

        headers = {"Accept": MANIFEST_TYPES}
        try:
            response = self.http.request(method, self.base + path, headers=self._auth(headers))
            if response.status_code == 401:
                self._authenticate(response, ref)
                response = self.http.request(method, self.base + path, headers=self._auth(headers))
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"the registry {self.server} is unreachable ({type(exc).__name__}); "
                "check that it runs and the address."
            ) from exc
        return response

    def _auth(self, headers: dict[str, str]) -> dict[str, str]:
        if self._token:
            return {**headers, "Authorization": self._token}
        return headers

    def _authenticate(self, challenge: httpx.Response, ref: ImageRef) -> None:
        if self.credentials is None:
            raise RegistryError(
                f"the registry {self.server} requires a login; set registry.username_env and password_env."
            )
        scheme, _, params = challenge.headers.get("WWW-Authenticate", "").partition(" ")
        if scheme.lower() == "basic":
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            self._token = "Basic " + base64.b64encode(pair).decode()
        elif scheme.lower() == "bearer":
            self._token = "Bearer " + self._bearer_token(dict(re.findall(r'(\w+)="([^"]*)"', params)), ref)
        else:
            raise RegistryError(f"the registry {self.server} asks for unsupported auth '{scheme}'.")

    def _bearer_token(self, challenge: dict[str, str], ref: ImageRef) -> str:
        import httpx

        query = {"service": challenge.get("service", ""), "scope": f"repository:{ref.repository}:pull"}
        try:
            response = self.http.get(
                challenge["realm"],
                params=query,
                auth=(self.credentials.username, self.credentials.password) if self.credentials else None,
            )
        except (httpx.HTTPError, KeyError) as exc:
            raise RegistryError(
                f"getting a token from the registry {self.server}'s auth server failed."
            ) from exc
        if response.status_code in (401, 403):
            raise RegistryError(
                f"the registry {self.server} refused the credentials; check username and password."
            )
        body = response.json()
        return str(body.get("token") or body.get("access_token") or "")

    def _raise_for_status(self, response: httpx.Response, ref: ImageRef) -> None:
        if response.status_code in (401, 403):
            raise RegistryError(
                f"the registry {self.server} refused the credentials for {ref.name}; "
                "check username and password."
            )
        if response.status_code >= 400:
            raise RegistryError(f"the registry {self.server} answered {response.status_code} for {ref.name}.")
