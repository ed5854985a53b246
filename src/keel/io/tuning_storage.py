"""The Optuna storage a study lives in: opened with retries, passwords masked wherever a URL is shown."""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

from keel.errors import ConfigError, KeelError


def masked(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


STORAGE_ATTEMPTS = 5
"""Tries at opening a storage whose tables another process may be creating at the same moment."""


def open_storage(url: str) -> Any:
    """Open the Optuna storage at ``url``, creating its tables when the database is new.

    Processes started together on a new database (the same `keel tune` on several machines) race to create the
    tables, and all but one fail on the database's own catalogue; they wait a moment and open it again.

    Raises:
        ConfigError: The driver for the URL's database is not installed.
        KeelError: The database cannot be reached or its tables cannot be created.
    """
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    if url.startswith("sqlite:"):
        # Several processes write to one file: wait for the lock instead of failing at once.
        options: dict[str, Any] = {"engine_kwargs": {"connect_args": {"timeout": 60}}}
    else:
        options = {"heartbeat_interval": 60, "grace_period": 180}
    problem = ""
    for attempt in range(1, STORAGE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                return optuna.storages.RDBStorage(url, **options)
        except ImportError:
            scheme = url.split(":", 1)[0]
            extra = " (uv sync --extra postgres, or pip install 'keel[postgres]')" if "postgres" in scheme else ""
            raise ConfigError(
                f"storage {masked(url)}: the database driver for {scheme!r} is not installed{extra}"
            ) from None
        except (IntegrityError, ProgrammingError, OperationalError) as error:
            problem = str(error.orig if error.orig is not None else error).strip().splitlines()[0]
            if attempt < STORAGE_ATTEMPTS:
                time.sleep(random.uniform(0.2, 1.0) * attempt)  # noqa: S311 - spreading retries, not a secret
    raise KeelError(
        f"storage {masked(url)}: cannot open it after {STORAGE_ATTEMPTS} tries ({problem}); check that the database "
        "server is running and reachable from this machine, and the user may create tables"
    )
