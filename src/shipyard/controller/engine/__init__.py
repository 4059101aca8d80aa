"""The controller's pure rules: rollouts, pipeline jobs, webhooks, notifications and schedules; no I/O."""
