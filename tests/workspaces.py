"""Copying an embedded workspace for a test that changes it."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path


def copy_workspace_to(source: Path, target: Path) -> Path:
    """A private copy of a workspace whose registry points at the copied artifacts.

    The embedded MLflow store records absolute artifact locations; they are rewritten to the copy's folder.
    """
    shutil.copytree(source, target)
    old, new = source.as_uri(), target.as_uri()
    with sqlite3.connect(target / "mlflow.db") as db:
        for table, column in (
            ("experiments", "artifact_location"),
            ("runs", "artifact_uri"),
            ("model_versions", "source"),
            ("model_versions", "storage_location"),
        ):
            db.execute(f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?)", (old, new))  # noqa: S608
    return target
