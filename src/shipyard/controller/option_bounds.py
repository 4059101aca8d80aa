"""Bounds of controller options that both `shipyard controller` and `shipyard lab up` check.

Kept free of imports: `shipyard controller --help` loads it, and the web stack takes most of a second.
"""

# The preview reconciler's period: under 0.1 s it spins on the database; past an hour a closed PR's
# preview outlives any reasonable TTL.
MIN_PREVIEW_RECONCILE_INTERVAL, MAX_PREVIEW_RECONCILE_INTERVAL = 0.1, 3600.0
DEFAULT_PREVIEW_RECONCILE_INTERVAL = 30.0
