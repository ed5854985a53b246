"""A new workspace's SQLite store, copied from an empty store MLflow built once per MLflow version.

MLflow builds a new SQLite store by running every Alembic migration since its first release (1.8 s here, more than
the Adult model takes to fit). The result depends only on the MLflow version, so keel keeps one empty, migrated
store per MLflow version in its cache (``KEEL_CACHE_DIR``, with its sha256 beside it) and copies it into each new
workspace. The copy holds no experiment: MLflow adds its ``Default`` experiment, with the artifact location it
would have chosen, the first time it opens the copy, and checks that the schema is at its head revision as it
always does.

Nothing here is needed for correctness: when the cache cannot be written or a cached store fails its checksum,
MLflow builds the workspace's store itself, as it did before.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
from importlib import metadata
from pathlib import Path

from keel.io.files import locked, temporary_file_for

log = logging.getLogger(__name__)


def seed_store(database: Path, cache: Path) -> bool:
    """Put an empty, migrated store at ``database`` (which must not exist yet).

    Args:
        database: The workspace's ``mlflow.db``.
        cache: keel's cache folder; the empty store is kept under ``mlflow-stores/``.

    Returns:
        Whether the store was seeded; ``False`` leaves ``database`` absent, for MLflow to build.
    """
    try:
        _write_atomically(database, _empty_store(cache))
    except Exception as exc:  # noqa: BLE001 - only a shortcut: MLflow then builds the store, and reports what fails
        log.debug("MLflow builds the store itself: no empty store to copy (%s)", exc)
        return False
    return True


def _empty_store(cache: Path) -> bytes:
    """The verified bytes of the empty store for the installed MLflow, built under a lock when missing or damaged."""
    folder = cache / "mlflow-stores"
    template = folder / f"mlflow-{metadata.version('mlflow')}.db"
    checksum = template.with_name(template.name + ".sha256")
    content = _verified(template, checksum)
    if content is not None:
        return content
    with locked(folder / ".build.lock"):
        content = _verified(template, checksum)  # another process may have built it while this one waited
        if content is not None:
            return content
        with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as scratch:
            content = _build(Path(scratch)).read_bytes()
        _write_atomically(template, content)
        _write_atomically(checksum, (hashlib.sha256(content).hexdigest() + "\n").encode("ascii"))
    return content


def _build(folder: Path) -> Path:
    """Let MLflow create and migrate a store in ``folder``, then drop the Default experiment it added."""
    from mlflow import MlflowClient

    database = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments(max_results=1)
    # A consistent single-file copy, whatever journal mode MLflow's connections used.
    empty = folder / "empty.db"
    with contextlib.closing(sqlite3.connect(database)) as source, contextlib.closing(sqlite3.connect(empty)) as copy:
        source.backup(copy)
        with copy:
            copy.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            copy.execute("DELETE FROM experiments WHERE experiment_id = 0")
        if copy.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]:
            raise ValueError("MLflow's new store holds experiments besides Default")
    return empty


def _verified(template: Path, checksum: Path) -> bytes | None:
    """The template's bytes when they match the recorded sha256, else ``None`` (missing, partial or damaged)."""
    try:
        content, expected = template.read_bytes(), checksum.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if hashlib.sha256(content).hexdigest() == expected:
        return content
    log.warning("the cached empty MLflow store %s does not match its sha256; building it again", template)
    return None


def _write_atomically(path: Path, content: bytes) -> None:
    """Write ``path`` through a temporary file beside it, with the mode ``open()`` would give it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = temporary_file_for(path)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
