"""The CI path: `shipyard release create` (an image CI built and pushed), `shipyard token create|list`.

A CI job holds a token of the `ci` role, scoped to its apps: it may create releases and deployments
of those apps and follow them, nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, handle_errors, load
from shipyard.cli.fleet_cmd import (
    CaFileOption,
    InsecureHttpOption,
    checked_name,
    ci_signature,
    fleet_client,
    follow,
    sealed_secrets,
)
from shipyard.cli.render import print_json, say, table
from shipyard.domain.spec import spec_snapshot
from shipyard.errors import ConfigError

release_app = typer.Typer(help="Releases of images built elsewhere (CI).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of the controller (admin token).", no_args_is_help=True)
DIGEST_REF = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
GIT_SHA = re.compile(r"^[0-9a-f]{7,64}$")
ROLES = ("viewer", "deployer", "admin", "ci")


@release_app.command("create")
@handle_errors
def create(
    image: Annotated[str, typer.Option("--image", help="REPO@sha256:..., the digest CI pushed")],
    git_sha: Annotated[str, typer.Option("--git-sha", help="the commit the image was built from")],
    deploy: Annotated[str | None, typer.Option("--deploy", help="then deploy it to this environment")] = None,
    follow_it: Annotated[
        bool, typer.Option("--follow", help="with --deploy: wait for the deployment, fail if it fails")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
    as_json: JsonOption = False,
) -> None:
    """Record a release of IMAGE (built and pushed by CI) with shipyard.yml's spec; optionally deploy it."""
    matched = DIGEST_REF.match(image)
    if matched is None:
        raise ConfigError(
            f"--image {image!r} must name the pushed digest, REPO@sha256:<64 hex>; "
            "take it from 'shipyard build --push --json'."
        )
    if not GIT_SHA.match(git_sha):
        raise ConfigError(f"--git-sha {git_sha!r} is not a commit sha; pass the hex sha, e.g. $GITHUB_SHA.")
    if follow_it and deploy is None:
        raise ConfigError("--follow follows a deployment; add --deploy ENVIRONMENT.")
    if deploy is not None:
        checked_name(deploy, "--deploy")
    spec = load(config, deploy)
    repository, digest = matched["repository"], matched["digest"]
    if repository != spec.image:
        raise ConfigError(f"{repository} is not this app's image {spec.image}; push to {spec.image}.")
    snapshot = spec_snapshot(spec)
    # Before anything is recorded: a secret that is not set stops the command with nothing changed.
    sealed = sealed_secrets(spec, config.resolve().parent, deploy) if deploy is not None else None
    with fleet_client(spec, ca_file, insecure_http) as client:
        signature = ci_signature(spec.app, repository, digest, snapshot)
        release = client.create_release(repository, digest, snapshot, signature=signature, git_sha=git_sha)
        if deploy is None:
            if as_json:
                print_json(release.model_dump(mode="json"))
            else:
                say(f"release {release.name} of {spec.app}: {repository}@{digest[:19]} ({git_sha[:12]})")
            return
        deployment = client.create_deployment(release.id, deploy, sealed_secrets=sealed)
        if not as_json:
            say(f"release {release.name} {repository}@{digest[:19]}: deployment {deployment.id} to {deploy}")
        if follow_it:
            follow(client, deployment.id, as_json)
        elif as_json:
            print_json(deployment.model_dump(mode="json"))


@token_app.command("create")
@handle_errors
def token_create(
    name: Annotated[str, typer.Argument(help="what the token is for, e.g. github-actions-web")],
    role: Annotated[str, typer.Option("--role", help="viewer | deployer | admin | ci")],
    apps: Annotated[
        list[str] | None, typer.Option("--app", help="ci: an app the token may ship (repeatable, required)")
    ] = None,
    ca_file: CaFileOption = None,
    insecure_http: InsecureHttpOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create an API token; it is printed once, never again."""
    if role not in ROLES:
        raise ConfigError(f"--role {role!r} is not a role; use one of: {', '.join(ROLES)}.")
    if role == "ci" and not apps:
        raise ConfigError("a ci token needs the apps it may ship: add --app APP (repeatable).")
    if role != "ci" and apps:
        raise ConfigError(f"--app scopes only ci tokens; a {role} token reaches every app.")
    scoped = [checked_name(app, "--app") for app in apps] if apps else None
    with fleet_client(None, ca_file, insecure_http) as client:
        created = client.create_token(name, role, apps=scoped)
    if as_json:
        print_json(created.model_dump(mode="json"))
        return
    scope = f" for {', '.join(created.apps)}" if created.apps else ""
    say(f"token {created.id} {created.name!r} ({created.role}{scope}); store it now, it is not shown again:")
    typer.echo(created.token)


@token_app.command("list")
@handle_errors
def token_list(
    ca_file: CaFileOption = None, insecure_http: InsecureHttpOption = False, as_json: JsonOption = False
) -> None:
    """API tokens (never their values)."""
    with fleet_client(None, ca_file, insecure_http) as client:
        found = client.tokens()
    if as_json:
        print_json([t.model_dump(mode="json") for t in found])
        return
    rows = [
        [t.id, t.name, t.role, ", ".join(t.apps or []), t.created_by, "revoked" if t.revoked else ""]
        for t in found
    ]
    table("tokens", ["id", "name", "role", "apps", "created by", ""], rows)


__all__ = ["Path", "release_app", "token_app"]
