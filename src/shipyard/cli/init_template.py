"""The commented shipyard.yml that `shipyard init` writes."""

from __future__ import annotations

TEMPLATE = """\
# shipyard.yml: how shipyard runs {app} on each host. Unknown keys are errors; keys starting
# with x- are ignored (use them for anchors and notes). Docs: docs/config.md
app: {app}
image: {image}              # registry/repository; deploy with `shipyard deploy {image}:TAG`
port: 3000                  # blue slot listens on 3000, green on 3001 (the app reads $PORT and $HOST)
network: host               # host (fast, default) or bridge (slot port published on 127.0.0.1 only)

# registry:
#   server: 127.0.0.1:5000
#   username_env: REGISTRY_USER      # credentials come from env vars or files, never inline
#   password_env: REGISTRY_PASSWORD

proxy:
  listen: 127.0.0.1:8080    # haproxy's frontend for this app
  # maintenance_page: public/503.html
  # retries:
  #   methods: [GET, HEAD, OPTIONS]   # replayed if a server dropped them; add PUT/DELETE if idempotent
  # timeouts:
  #   http_request: 10                # seconds a client has to send its request head
  # max_body: 100m                    # larger request bodies get 413

healthcheck:
  path: /up                 # must answer 200 before the new release gets traffic
  interval: 0.2             # seconds between checks
  timeout: 2
  healthy_threshold: 2      # consecutive passes needed
  deadline: 30              # give up (and keep the old release) after this many seconds

# env:
#   clear:
#     RAILS_ENV: production
#   secret:                 # values from `shipyard secrets` (or the environment) at deploy
#     - DATABASE_URL

deploy:
  drain_timeout: 10         # seconds in-flight requests get to finish on the old slot
  stop_timeout: 10
  keep_releases: 3          # containers and images kept for rollback
  standby: 0                # keep the old container running this long: rollback is then ~instant

# hooks:
#   pre-deploy: ./bin/migrate       # a failure aborts before anything changes
#   post-swap: ./bin/notify
# resources:
#   memory: 512m
#   cpus: 1.0
"""


def render_template(app: str, image: str) -> str:
    return TEMPLATE.format(app=app, image=image)
