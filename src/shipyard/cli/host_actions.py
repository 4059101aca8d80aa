"""What the host commands do once their arguments are parsed, without the CLI framework.

The Typer commands (host_cmd, common) and the console script's fast path for `shipyard rollback`
(entry) share these, so both print, change and fail alike; nothing here imports Typer or Click.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.cli.render import StepPrinter, announce, print_json, say, say_styled

if TYPE_CHECKING:
    from shipyard.domain.plan import Plan
    from shipyard.domain.spec import AppSpec
    from shipyard.host.context import HostContext
    from shipyard.host.policy import HostPolicy
    from shipyard.host.service import Outcome


def load(config: Path, env: str | None = None) -> AppSpec:
    """shipyard.yml, with shipyard.ENV.yml merged over it when a command acts for environment `env`."""
    from shipyard.domain.spec import load_spec

    return load_spec(config, env)


def host_context(config: Path | None = None) -> HostContext:
    """This host's context; with `config`, relative registry files resolve next to it."""
    from shipyard.host.context import HostContext, default_home

    return HostContext(home=default_home(), config_dir=config.resolve().parent if config else None)


def repo_root(config: Path) -> Path:
    return config.resolve().parent


def app_secrets(spec: AppSpec, config: Path, env: str) -> dict[str, str]:
    """Values of env.secret: the encrypted store of `env`, else the process environment."""
    if not spec.env.secret:
        return {}
    from shipyard.secrets.factory import open_store
    from shipyard.secrets.resolve import resolve_secrets

    return resolve_secrets(spec.env.secret, open_store(spec.secrets, repo_root(config), env))


def host_policy(path: Path | None, spec: AppSpec, config: Path, env: str, home: Path) -> HostPolicy | None:
    """The host's policy for a deploy from this machine, or None when the host has none.

    Names of env.secret found in the encrypted store of `env` are not read from the environment, so
    the policy's prefix rule applies only to the others.
    """
    from shipyard.host.policy import cli_policy

    policy = cli_policy(path, home=home)
    if policy is None:
        return None
    policy = policy.for_config(config)
    if not spec.env.secret:
        return policy
    from shipyard.secrets.factory import open_store

    store = open_store(spec.secrets, repo_root(config), env)
    return policy.with_stored_secrets(store.names() if store.exists() else [])


def report(outcome: Outcome, as_json: bool, verb: str) -> None:
    release = outcome.release
    if as_json:
        print_json(
            {
                "release": release.id if release else None,
                "digest": release.digest if release else None,
                "plan": outcome.plan.describe(),
                "changed": not outcome.plan.empty,
                "history_id": outcome.history_id,
                "timings_ms": {k: round(v * 1000, 1) for k, v in outcome.timings.items()},
                "recovered": outcome.recovered,
            }
        )
        return
    for line in outcome.recovered:
        say(f"recovered: {line}")
    if outcome.plan.empty:
        say(outcome.plan.describe()[0])
    elif release is not None:
        tag = f":{release.tag}" if release.tag else ""
        say_styled(
            ("bold green", verb),
            ("", " release "),
            ("bold", release.id),
            ("", f" {release.image}{tag} ({release.digest})"),
        )


def print_outcome_plan(outcome: Outcome, as_json: bool) -> None:
    print_plan(outcome.plan, as_json, {"release": outcome.release.id if outcome.release else None})


def print_plan(plan: Plan, as_json: bool, extra: dict[str, object] | None = None) -> None:
    """A dry run's output: exactly the commands that would run, numbered (or as JSON)."""
    if as_json:
        print_json({**(extra or {}), "plan": plan.describe()})
        return
    say_styled(("bold", "plan"), ("", " (dry run, nothing changed):"))
    for number, line in enumerate(plan.describe(), 1):
        say(f"  {number}. {line}")


def rollback_here(
    config: Path,
    release: str | None,
    *,
    env: str,
    dry_run: bool,
    wait: bool,
    as_json: bool,
    policy_file: Path | None,
    spec: AppSpec | None = None,
    context: HostContext | None = None,
) -> None:
    """`shipyard rollback` on this host: swap back to the previous release (or `release`).

    `context`: the host's (the standby keeper passes its own); closed when done.
    """
    from shipyard.host import service

    spec = spec or load(config)
    announce("this host", as_json)
    with context or host_context(config) as host:
        policy = host_policy(policy_file, spec, config, env, host.home)
        if dry_run:
            print_outcome_plan(service.rollback(host, spec, release, dry_run=True, policy=policy), as_json)
            return
        secrets = app_secrets(spec, config, env)
        outcome = service.rollback(
            host,
            spec,
            release,
            wait=wait,
            secrets=secrets,
            reporter=StepPrinter(quiet=as_json),
            policy=policy,
        )
        report(outcome, as_json, "rolled back to")
