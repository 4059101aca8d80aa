"""HTTP routers of the controller, all under /api/v1 except /healthz and /metrics."""
