"""Dask clusters: connect to a scheduler, or start a ``LocalCluster`` on loopback and shut it down at the end.

Dask is an optional extra (``pip install 'keel[dask]'``); it is imported only when a command asks for it, and a
missing install is a :class:`~keel.errors.ConfigError` saying how to add it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keel.errors import ConfigError, DataError, KeelError
from keel.io.sources import file_sha256, fingerprint, fingerprint_files

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_EXTRAS = {
    "dask": ("dask", "distributed"),
    "tune": ("optuna",),
}


def require_extra(extra: str) -> None:
    """Check that an optional extra's packages import, with a message saying how to install them.

    Args:
        extra: ``dask`` or ``tune``.

    Raises:
        ConfigError: A package of the extra is not installed.
    """
    import importlib

    for module in _EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"this needs the optional {extra!r} extra ({module} is not installed): "
                f"`pip install 'keel[{extra}]'` or, in a checkout, `uv sync --extra {extra}`"
            ) from None


def default_worker_count() -> int:
    """Workers for a ``LocalCluster`` sized to this machine: one single-threaded process per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, *, workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Any]:
    """A ``distributed.Client`` for the duration of a block.

    Args:
        scheduler: Address of a running scheduler (``tcp://host:8786``); ``None`` starts a ``LocalCluster`` on
            127.0.0.1 (never another interface) that is closed when the block ends.
        workers: Worker processes of the local cluster (default: one per usable core).
        threads_per_worker: Threads per local worker.

    Yields:
        The connected client.

    Raises:
        ConfigError: Dask is not installed.
        KeelError: The scheduler cannot be reached.
    """
    require_extra("dask")
    from distributed import Client, LocalCluster

    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    if quiet:
        # Distributed logs every connection at INFO; keel reports what matters itself (``-v`` shows it all).
        logging.getLogger("distributed").setLevel(logging.WARNING)

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise KeelError(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with `dask scheduler` and "
                "workers with `dask worker ADDRESS`, or leave out --scheduler to use a local cluster"
            ) from None
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]
        return
    count = workers or default_worker_count()
    log.info("starting a LocalCluster of %d worker(s) on %s", count, LOOPBACK)
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=count,
            threads_per_worker=threads_per_worker,
            processes=True,
            host=LOOPBACK,
            dashboard_address=None,
            # A task that fails (bad data) is logged by its worker with a traceback and raised again here, where
            # keel turns it into one message; the workers' own log says it again only with ``-v``.
            silence_logs=logging.CRITICAL if quiet else logging.ERROR,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


def stdout_to_stderr() -> None:
    """Point a local worker's stdout at its stderr (LightGBM's C++ code prints network set-up there)."""
    sys.stdout.flush()
    os.dup2(2, 1)


def parquet_partitions(files: list[Path], label: str) -> tuple[list[Any], list[str]]:
    """The Parquet files as Dask partitions (delayed pandas frames, nothing read yet) and their columns."""
    import dask
    import dask.dataframe as dd

    # Keep pandas' own dtypes (no string[pyarrow] conversion), so rows look as reading them with pandas gives.
    with dask.config.set({"dataframe.convert-string": False}):
        try:
            frame = dd.read_parquet([str(p) for p in files], index=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{label}: cannot read it as Parquet: {str(exc).splitlines()[0]}") from None
        partitions = list(frame.to_delayed())
    return partitions, [str(c) for c in frame.columns]


def fingerprint_on_workers(client: Any, on_workers: list[Path], here: list[Path]) -> dict[str, str]:
    """sha256 of the input files: the training table's on the workers (it may be large), the others here."""
    files = fingerprint_files(on_workers)
    hashes = client.gather(client.map(file_sha256, list(files.values()), pure=False))
    return dict(zip(files, hashes, strict=True)) | fingerprint(here)
