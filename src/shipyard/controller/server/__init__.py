"""The controller process: the FastAPI app, its routers and dashboard, the rollout loop and the job worker."""
