"""The one-click pipeline: webhooks verified and stored, jobs queued, claimed by a worker and run."""
