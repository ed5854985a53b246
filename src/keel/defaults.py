"""Defaults a user can override in more than one place (a CLI option, a settings object, a function argument).

Each is defined here once and imported wherever it is the default; this module imports nothing.
"""

DRIFT_THRESHOLD = 0.2
"""PSI at or above which a feature is reported as drifting (0.1 is usually read as small, 0.2 as significant)."""
SERVE_HOST = "127.0.0.1"
"""Interface ``keel serve`` binds (this machine only)."""
SERVE_PORT = 8000
SERVE_WORKERS = 1
POLL_SECONDS = 10.0
"""Seconds between the service's checks for a new version of the alias it follows."""
MAX_RECORDS = 10_000
"""Most records in one prediction request."""
MAX_EXPLAIN_RECORDS = 100
"""Most records in one ``?explain=true`` request."""
MONITOR_WINDOW = 5000
"""Most recent records the service keeps for drift monitoring."""
