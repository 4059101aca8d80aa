"""Render the host's haproxy configuration: pure, one frontend and one backend per app.

Each backend has two servers, `blue` and `green`, one per slot. The active slot is enabled, the
idle one `disabled` (maintenance), so a restarted haproxy serves what was active. Swaps change
server states through the runtime API; the file is rewritten to match but never reloaded for a swap.
In maintenance the frontend answers 503 with the maintenance page while the health path keeps
answering 200 for an upstream load balancer; entering and leaving maintenance is a seamless reload.

The spec validates every value before it gets here; the renderer still refuses a value that would
start a new line, a new word or a comment in the file, so a bypassed validation cannot add a rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import ConfigError

SLOTS = ("blue", "green")

DEFAULT_MAINTENANCE_PAGE = (
    "<!doctype html><html><head><title>Down for maintenance</title></head>"
    "<body><h1>Down for maintenance</h1><p>We will be back shortly.</p></body></html>"
)


@dataclass(frozen=True)
class ProxiedApp:
    name: str
    listen: str
    upstream_host: str
    slot_ports: dict[str, int]
    health_path: str
    active_slot: str | None
    maintenance_page: Path | None = None
    check_interval_ms: int = 1000
    maintenance: bool = False
    retry_attempts: int = 3
    # Methods replayed when a server closed without answering; every other method is only retried
    # when its connection failed (the request never reached a server).
    replay_methods: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")
    replay_on_response_timeout: bool = False
    http_request_timeout: float = 10.0
    max_body_bytes: int | None = None
    # A preview's backend of the pool (served by the shared previews frontend); None: its own frontend.
    pool_backend: str | None = None

    @property
    def backend(self) -> str:
        return self.pool_backend or f"app_{self.name}"


@dataclass(frozen=True)
class PreviewPool:
    """The shared previews frontend and its `slots` pre-declared backends `preview_0`...; `routes` maps
    each routed host name to its backend (the previews map file's content)."""

    listen: str
    slots: int
    routes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.root / "admin.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "haproxy.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "server-state"

    @property
    def log(self) -> Path:
        return self.root / "haproxy.log"

    def page(self, app: str) -> Path:
        return self.root / f"maintenance-{app}.html"

    @property
    def previews_map(self) -> Path:
        return self.root / "previews.map"

    @property
    def preview_missing_page(self) -> Path:
        return self.root / "preview-missing.html"


# A word of the config: no whitespace, control character, quote, backslash, `#` or brace.
_CONFIG_WORD = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\"'\\#{}]+")
# A file path: spaces are tolerated by nothing here either, but the point is a single line.
_CONFIG_PATH = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029\"'\\#]+")


def _word(what: str, value: str) -> str:
    if _CONFIG_WORD.fullmatch(value) is None:
        raise ConfigError(
            f"refusing to write haproxy's config: {what} {value!r} contains whitespace, a control "
            "character, a quote, '#' or a brace; fix it in shipyard.yml."
        )
    return value


def _path(what: str, path: Path) -> Path:
    if _CONFIG_PATH.fullmatch(str(path)) is None:
        raise ConfigError(
            f"refusing to write haproxy's config: the {what} path {str(path)!r} contains whitespace, "
            "a control character, a quote or '#'; use a directory without them."
        )
    return path


def _checked(app: ProxiedApp, page: Path) -> None:
    _word("the app name", app.name)
    _word(f"proxy.listen of {app.name}", app.listen)
    _word(f"the upstream host (bind) of {app.name}", app.upstream_host)
    _word(f"healthcheck.path of {app.name}", app.health_path)
    _path(f"maintenance page of {app.name}", page)
    if app.active_slot is not None and app.active_slot not in SLOTS:
        raise ConfigError(f"refusing to write haproxy's config: {app.active_slot!r} is not a slot.")
    for slot in SLOTS:
        if not 0 < int(app.slot_ports[slot]) < 65536:
            raise ConfigError(
                f"refusing to write haproxy's config: port {app.slot_ports[slot]} is out of range."
            )


def render_global(paths: ProxyPaths) -> list[str]:
    for what, path in (
        ("admin socket", paths.admin_socket),
        ("server state file", paths.state_file),
        ("pid file", paths.pidfile),
    ):
        _path(what, path)
    return [
        "global",
        "    master-worker",
        f"    stats socket {paths.admin_socket} mode 600 level admin expose-fd listeners",
        f"    server-state-file {paths.state_file}",
        f"    pidfile {paths.pidfile}",
        "    maxconn 4000",
        # One thread: the app shares the host's cores, and a second haproxy thread mostly competes
        # with it (2 cores: 0.98 of the direct path's requests/s with one thread, 0.79 with two).
        "    nbthread 1",
        "    hard-stop-after 60s",
        "",
        "defaults",
        "    mode http",
        "    option dontlognull",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 10s",
        # A stalled app must miss checks for seconds, not one, before its only slot is marked down.
        "    timeout check 5s",
        # A retry goes to the other slot (a request whose connection to a stopping server failed);
        # each backend says which failures may be retried, see render_retries.
        "    option redispatch 1",
        "    retry-on conn-failure",
        "    load-server-state-from-file global",
        # On reload, an idle keep-alive connection is closed after its next response, not under it.
        "    option idle-close-on-response",
        "",
    ]


def render_app(app: ProxiedApp, page: Path) -> list[str]:
    _checked(app, page)
    lines = [f"frontend front_{app.name}", f"    bind {app.listen}"]
    if app.maintenance:
        lines += [
            '    http-request return status 200 content-type text/plain string "ok" '
            f"if {{ path {app.health_path} }}",
            f"    http-request return status 503 content-type text/html file {page}",
        ]
    lines.append(f"    timeout http-request {_milliseconds(app.http_request_timeout)}")
    if app.max_body_bytes is not None:
        # A body without a length could only be measured by buffering it whole: it is refused.
        lines += [
            "    http-request deny deny_status 413 "
            f"if {{ req.hdr_val(content-length) gt {app.max_body_bytes} }}",
            '    http-request return status 411 content-type text/plain string "send a Content-Length" '
            "if { req.hdr(transfer-encoding) -m found }",
        ]
    lines += [
        f"    default_backend {app.backend}",
        "",
        f"backend {app.backend}",
        "    balance roundrobin",
        f"    option httpchk GET {app.health_path}",
        "    http-check expect status 200",
        *render_retries(app),
    ]
    for slot in SLOTS:
        state = "" if slot == app.active_slot and not app.maintenance else " disabled"
        lines.append(
            f"    server {slot} {app.upstream_host}:{app.slot_ports[slot]} "
            f"check inter {app.check_interval_ms} fall 3 rise 2{state}"
        )
    lines.append("")
    return lines


PREVIEW_MISSING = "preview_missing"
# Every pool backend retries like an app with the default proxy.retries (a runtime change cannot vary it).
POOL_RETRIES = ProxiedApp("pool", "", "", {}, "/", None)
# Where an unclaimed pool backend's servers point until a preview takes it (never enabled there).
UNCLAIMED_ADDRESS = "127.0.0.1:1"
# The page for a host name the map does not know; haproxy fills in the (URL-encoded, so inert) host.
PREVIEW_MISSING_PAGE = (
    "<!doctype html><html><head><title>No preview here</title></head><body><h1>No preview here</h1>"
    "<p>%[req.hdr(host),field(1,:),lower,url_enc] is not an open preview: its pull request is closed, "
    "or it was never opened.</p></body></html>\n"
)


def render_previews(pool: PreviewPool, apps: list[ProxiedApp], paths: ProxyPaths) -> list[str]:
    """One frontend choosing the backend by Host through the map file, the 404 answer for a host name
    it does not know, and the pool: every backend the same but for its servers' addresses and states,
    so taking, switching and freeing one is a runtime-API change that this file only mirrors."""
    _word("--previews-listen", pool.listen)
    _path("previews map", paths.previews_map)
    _path("missing preview page", paths.preview_missing_page)
    claimed = {app.pool_backend: app for app in apps}
    lookup = f"req.hdr(host),field(1,:),lower,map({paths.previews_map})"
    lines = [
        "frontend previews",
        f"    bind {pool.listen}",
        f"    use_backend %[{lookup}]",
        f"    default_backend {PREVIEW_MISSING}",
        "",
        f"backend {PREVIEW_MISSING}",
        '    http-request return status 404 content-type "text/html; charset=utf-8" '
        f"lf-file {paths.preview_missing_page}",
        "",
    ]
    for index in range(pool.slots):
        name = f"preview_{index}"
        app = claimed.get(name)
        lines += [
            f"backend {name}",
            "    balance roundrobin",
            *render_retries(POOL_RETRIES),
        ]
        for slot in SLOTS:
            if app is None:
                address, state = UNCLAIMED_ADDRESS, " disabled"
            else:
                _checked(app, paths.page(app.name))
                address = f"{app.upstream_host}:{app.slot_ports[slot]}"
                state = "" if slot == app.active_slot and not app.maintenance else " disabled"
            # A TCP check: the pool is declared once for every app, whatever its health path; the host
            # checks a slot's health path itself before it switches to it.
            lines.append(f"    server {slot} {address} check inter 1000 fall 3 rise 2{state}")
        lines.append("")
    return lines


def render_map(routes: dict[str, str]) -> str:
    for host, backend in routes.items():
        _word("a preview host name", host)
        _word("a preview backend", backend)
    return "".join(f"{host} {backend}\n" for host, backend in sorted(routes.items()))


def render_retries(app: ProxiedApp) -> list[str]:
    """Never replay a request a server may have handled unless its method is listed as replayable.

    `conn-failure` (the request never reached a server) is retried for every method; the layer-7
    causes (`empty-response`, `response-timeout`) only for app.replay_methods, by disabling layer-7
    retries for every other method.
    """
    if app.retry_attempts == 0:
        return ["    retries 0", "    retry-on none"]
    causes = ["conn-failure"]
    if app.replay_methods:
        causes.append("empty-response")
        if app.replay_on_response_timeout:
            causes.append("response-timeout")
    lines = [f"    retries {app.retry_attempts}", f"    retry-on {' '.join(causes)}"]
    if app.replay_methods:
        lines.append(f"    http-request disable-l7-retry unless {{ method {' '.join(app.replay_methods)} }}")
    return lines


def _milliseconds(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def render_config(apps: list[ProxiedApp], paths: ProxyPaths, previews: PreviewPool | None = None) -> str:
    lines = render_global(paths)
    own = [app for app in apps if app.pool_backend is None]
    for app in sorted(own, key=lambda a: a.name):
        lines += render_app(app, app.maintenance_page or paths.page(app.name))
    if previews is not None:
        lines += render_previews(previews, [app for app in apps if app.pool_backend is not None], paths)
    elif not own:
        # haproxy refuses to start without a proxy; an idle one keeps the admin socket up.
        lines += ["frontend idle", "    bind 127.0.0.1:0", "    http-request deny", ""]
    return "\n".join(lines) + "\n"
